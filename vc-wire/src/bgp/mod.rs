//! BGP-4 for vc's eBGP sessions: the messages ([`packet`]) and the Adj-RIB-In with the import
//! policy the service fixes ([`rib`]).
pub mod packet;
pub mod rib;
