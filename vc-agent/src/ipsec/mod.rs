//! IKEv2/IPsec through strongSwan's charon, failing closed (R5–R11).
//!
//! The daemon's entry point is [`Ipsec::start`]: it installs the XFRM block policies (so GRE
//! can never leave in clear), starts vc's own charon or attaches to the system's, loads one
//! connection per tunnel this CPE terminates over VICI, initiates them, and from then on keeps
//! an SA table from charon's events ([`Ipsec::snapshot`], [`Ipsec::watch`],
//! [`Ipsec::notices`]), naming failures plainly ([`Failure`]).
//!
//! | module | job |
//! |---|---|
//! | `vici` | the VICI protocol: pure codec + tokio client |
//! | `conn` | a tunnel of the config as a charon connection and secret (pure) |
//! | `charon` | vc's own charon: strongswan.conf, start, find, death |
//! | `policy` | XFRM block policies (fail closed) |
//! | `failure` | charon's log lines → NO_PROPOSAL_CHOSEN, AUTHENTICATION_FAILED, ... |
//! | `sa` | events → per-tunnel SA state (pure) |
//! | `control` | the controller task tying them together |
//! | `status` | the IPsec piece of the agent's status, with its text |
//! | `report`, `cli` | state as text; `vc-agent ipsec up/status/down` |
pub mod charon;
pub mod cli;
pub mod conn;
pub mod control;
pub mod failure;
pub mod journal;
pub mod policy;
pub mod report;
pub mod sa;
pub mod status;
pub mod vici;

pub use control::{CharonState, Ipsec, IpsecError, Notice, Snapshot};
pub use failure::Failure;
pub use sa::{ChildMode, ChildSa, ChildState, IkeSa, IkeState, SaTable, TunnelSa};
