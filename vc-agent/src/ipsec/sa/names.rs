//! charon's names for the states and modes of its SAs, typed at the VICI seam. A name this
//! version of vc does not know is kept as it came (`Other`), never lost.
use std::fmt;

use serde::{Deserialize, Serialize};

/// An enum of charon's upper-case names, (de)serialised as the name itself.
macro_rules! charon_names {
    (
        $(#[$meta:meta])*
        $name:ident, default $default:ident {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(from = "String", into = "String")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A name this version of vc does not know.
            Other(String),
        }

        impl $name {
            /// charon's name.
            #[must_use]
            pub fn name(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)+
                    Self::Other(name) => name,
                }
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::$default
            }
        }

        impl From<&str> for $name {
            fn from(name: &str) -> Self {
                match name {
                    $($text => Self::$variant,)+
                    other => Self::Other(other.to_string()),
                }
            }
        }

        impl From<String> for $name {
            fn from(name: String) -> Self {
                Self::from(name.as_str())
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.name().to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

charon_names! {
    /// An IKE SA's state (strongSwan's `ike_sa_state_t`).
    IkeState, default Created {
        Created = "CREATED",
        Connecting = "CONNECTING",
        Established = "ESTABLISHED",
        Passive = "PASSIVE",
        Rekeying = "REKEYING",
        Rekeyed = "REKEYED",
        Deleting = "DELETING",
        Destroying = "DESTROYING",
    }
}

charon_names! {
    /// A child SA's state (strongSwan's `child_sa_state_t`).
    ChildState, default Created {
        Created = "CREATED",
        Routed = "ROUTED",
        Installing = "INSTALLING",
        Installed = "INSTALLED",
        Updating = "UPDATING",
        Rekeying = "REKEYING",
        Rekeyed = "REKEYED",
        Retrying = "RETRYING",
        Deleting = "DELETING",
        Deleted = "DELETED",
        Destroying = "DESTROYING",
    }
}

charon_names! {
    /// A child SA's IPsec mode (strongSwan's `ipsec_mode_t`); vc only ever asks for tunnel
    /// mode, hence the default.
    ChildMode, default Tunnel {
        Transport = "TRANSPORT",
        Tunnel = "TUNNEL",
        Beet = "BEET",
        Pass = "PASS",
        Drop = "DROP",
    }
}

impl IkeState {
    /// Established, possibly being rekeyed (R24 step 1).
    #[must_use]
    pub fn is_up(&self) -> bool {
        matches!(
            self,
            IkeState::Established | IkeState::Rekeying | IkeState::Rekeyed
        )
    }
}

impl ChildState {
    /// The kernel holds this child's SAs: being installed, installed, updated (MOBIKE), or on
    /// either side of a rekey. A tunnel with such a child has an SA; `CREATED`, `ROUTED` (a
    /// trap policy only), `RETRYING` and the deleting states are no SA.
    #[must_use]
    pub fn holds_sa(&self) -> bool {
        matches!(
            self,
            ChildState::Installing
                | ChildState::Installed
                | ChildState::Updating
                | ChildState::Rekeying
                | ChildState::Rekeyed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{ChildMode, IkeState};

    #[test]
    fn names_round_trip_and_unknown_ones_are_kept() {
        assert_eq!(IkeState::from("ESTABLISHED"), IkeState::Established);
        assert_eq!(ChildMode::Tunnel.name(), "TUNNEL");
        let odd = IkeState::from("HALF_OPEN");
        assert_eq!(odd, IkeState::Other("HALF_OPEN".into()));
        assert_eq!(odd.to_string(), "HALF_OPEN");
        let json = serde_json::to_string(&IkeState::Rekeying).expect("json");
        assert_eq!(json, "\"REKEYING\"");
        assert_eq!(
            serde_json::from_str::<IkeState>(&json).expect("parse"),
            IkeState::Rekeying
        );
        assert!(IkeState::Rekeyed.is_up() && !IkeState::Connecting.is_up());
    }
}
