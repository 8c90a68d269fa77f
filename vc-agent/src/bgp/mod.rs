//! eBGP per tunnel (R16–R22): codec, FSM, sessions.
pub mod fsm;
pub mod packet;
