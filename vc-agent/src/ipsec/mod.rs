//! IKEv2/IPsec through strongSwan (R5–R11).
pub mod conn;
pub mod failure;
pub mod sa;
pub mod vici;
