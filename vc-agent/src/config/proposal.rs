//! strongSwan's proposal grammar (5.9.8, the version Debian 12 ships), so `check-config`
//! rejects what charon would refuse to load, with charon's own words.
//!
//! A proposal is algorithm keywords joined by `-`, e.g. `aes256gcm16-prfsha384-ecp384`. The
//! keywords are strongSwan's static table (`proposal_keywords_static.txt`); the rules are those
//! of `check_proposal()` in `proposal.c`. The oracle test in `tests/ipsec_charon.rs` loads
//! every keyword and each rule's counter-example into a real charon and compares verdicts.
//!
//! vc is stricter than charon in two places, both because charon would accept something that
//! does not protect anything: `null` encryption, and classic (non-AEAD) ESP encryption
//! without an integrity algorithm.
use std::fmt;

/// Where a proposal is used: rules differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Ike,
    Esp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Ike => "IKE",
            Protocol::Esp => "ESP",
        })
    }
}

/// What a keyword stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// Encryption; AEAD algorithms (GCM, CCM, ChaCha20-Poly1305, GMAC) authenticate too.
    Encryption { aead: bool, null: bool },
    /// Integrity; `implies_prf` when charon derives an IKE PRF from it.
    Integrity { implies_prf: bool },
    /// IKE pseudo-random function.
    Prf,
    /// Key exchange (DH group); `none` is "no PFS".
    KeyExchange { none: bool },
    /// Extended sequence numbers on or off.
    Esn,
}

const fn enc(aead: bool) -> Transform {
    Transform::Encryption { aead, null: false }
}
const INTEG: Transform = Transform::Integrity { implies_prf: true };
const PRF: Transform = Transform::Prf;
const KE: Transform = Transform::KeyExchange { none: false };

/// strongSwan 5.9.8's keywords. Case-sensitive, like charon's gperf table.
pub const KEYWORDS: &[(&str, Transform)] = &[
    (
        "null",
        Transform::Encryption {
            aead: false,
            null: true,
        },
    ),
    ("des", enc(false)),
    ("3des", enc(false)),
    ("aes", enc(false)),
    ("aes128", enc(false)),
    ("aes192", enc(false)),
    ("aes256", enc(false)),
    ("aes128ctr", enc(false)),
    ("aes192ctr", enc(false)),
    ("aes256ctr", enc(false)),
    ("aes128ccm8", enc(true)),
    ("aes128ccm64", enc(true)),
    ("aes128ccm12", enc(true)),
    ("aes128ccm96", enc(true)),
    ("aes128ccm16", enc(true)),
    ("aes128ccm128", enc(true)),
    ("aes128ccm", enc(true)),
    ("aes192ccm8", enc(true)),
    ("aes192ccm64", enc(true)),
    ("aes192ccm12", enc(true)),
    ("aes192ccm96", enc(true)),
    ("aes192ccm16", enc(true)),
    ("aes192ccm128", enc(true)),
    ("aes192ccm", enc(true)),
    ("aes256ccm8", enc(true)),
    ("aes256ccm64", enc(true)),
    ("aes256ccm12", enc(true)),
    ("aes256ccm96", enc(true)),
    ("aes256ccm16", enc(true)),
    ("aes256ccm128", enc(true)),
    ("aes256ccm", enc(true)),
    ("aes128gcm8", enc(true)),
    ("aes128gcm64", enc(true)),
    ("aes128gcm12", enc(true)),
    ("aes128gcm96", enc(true)),
    ("aes128gcm16", enc(true)),
    ("aes128gcm128", enc(true)),
    ("aes128gcm", enc(true)),
    ("aes192gcm8", enc(true)),
    ("aes192gcm64", enc(true)),
    ("aes192gcm12", enc(true)),
    ("aes192gcm96", enc(true)),
    ("aes192gcm16", enc(true)),
    ("aes192gcm128", enc(true)),
    ("aes192gcm", enc(true)),
    ("aes256gcm8", enc(true)),
    ("aes256gcm64", enc(true)),
    ("aes256gcm12", enc(true)),
    ("aes256gcm96", enc(true)),
    ("aes256gcm16", enc(true)),
    ("aes256gcm128", enc(true)),
    ("aes256gcm", enc(true)),
    ("aes128gmac", enc(true)),
    ("aes192gmac", enc(true)),
    ("aes256gmac", enc(true)),
    ("chacha20poly1305", enc(true)),
    ("chacha20poly1305compat", enc(true)),
    ("blowfish", enc(false)),
    ("blowfish128", enc(false)),
    ("blowfish192", enc(false)),
    ("blowfish256", enc(false)),
    ("camellia", enc(false)),
    ("camellia128", enc(false)),
    ("camellia192", enc(false)),
    ("camellia256", enc(false)),
    ("camellia128ctr", enc(false)),
    ("camellia192ctr", enc(false)),
    ("camellia256ctr", enc(false)),
    ("camellia128ccm8", enc(true)),
    ("camellia128ccm64", enc(true)),
    ("camellia128ccm12", enc(true)),
    ("camellia128ccm96", enc(true)),
    ("camellia128ccm16", enc(true)),
    ("camellia128ccm128", enc(true)),
    ("camellia192ccm8", enc(true)),
    ("camellia192ccm64", enc(true)),
    ("camellia192ccm12", enc(true)),
    ("camellia192ccm96", enc(true)),
    ("camellia192ccm16", enc(true)),
    ("camellia192ccm128", enc(true)),
    ("camellia256ccm8", enc(true)),
    ("camellia256ccm64", enc(true)),
    ("camellia256ccm12", enc(true)),
    ("camellia256ccm96", enc(true)),
    ("camellia256ccm16", enc(true)),
    ("camellia256ccm128", enc(true)),
    ("cast128", enc(false)),
    ("serpent", enc(false)),
    ("serpent128", enc(false)),
    ("serpent192", enc(false)),
    ("serpent256", enc(false)),
    ("twofish", enc(false)),
    ("twofish128", enc(false)),
    ("twofish192", enc(false)),
    ("twofish256", enc(false)),
    ("sha", INTEG),
    ("sha1", INTEG),
    ("sha1_160", INTEG),
    ("sha256", INTEG),
    ("sha2_256", INTEG),
    // Truncated SHA-256 has no PRF counterpart in charon's integ_prf_map.
    ("sha256_96", Transform::Integrity { implies_prf: false }),
    ("sha2_256_96", Transform::Integrity { implies_prf: false }),
    ("sha384", INTEG),
    ("sha2_384", INTEG),
    ("sha512", INTEG),
    ("sha2_512", INTEG),
    ("md5", INTEG),
    ("md5_128", INTEG),
    ("aesxcbc", INTEG),
    ("camelliaxcbc", INTEG),
    ("aescmac", INTEG),
    ("prfsha1", PRF),
    ("prfsha256", PRF),
    ("prfsha384", PRF),
    ("prfsha512", PRF),
    ("prfmd5", PRF),
    ("prfaesxcbc", PRF),
    ("prfcamelliaxcbc", PRF),
    ("prfaescmac", PRF),
    ("none", Transform::KeyExchange { none: true }),
    ("modpnone", Transform::KeyExchange { none: true }),
    ("modpnull", KE),
    ("modp768", KE),
    ("modp1024", KE),
    ("modp1536", KE),
    ("modp2048", KE),
    ("modp3072", KE),
    ("modp4096", KE),
    ("modp6144", KE),
    ("modp8192", KE),
    ("ecp192", KE),
    ("ecp224", KE),
    ("ecp256", KE),
    ("ecp384", KE),
    ("ecp521", KE),
    ("modp1024s160", KE),
    ("modp2048s224", KE),
    ("modp2048s256", KE),
    ("ecp224bp", KE),
    ("ecp256bp", KE),
    ("ecp384bp", KE),
    ("ecp512bp", KE),
    ("curve25519", KE),
    ("x25519", KE),
    ("curve448", KE),
    ("x448", KE),
    ("ntru112", KE),
    ("ntru128", KE),
    ("ntru192", KE),
    ("ntru256", KE),
    ("newhope128", KE),
    ("noesn", Transform::Esn),
    ("esn", Transform::Esn),
];

/// Why a proposal is refused. Messages are charon's where charon has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposalError {
    #[error("empty proposal")]
    Empty,
    #[error("algorithm '{0}' not recognized")]
    Unknown(String),
    #[error("an encryption algorithm is mandatory in {0} proposals")]
    NoEncryption(Protocol),
    #[error(
        "classic and combined-mode (AEAD) encryption algorithms can't be contained in the same {0} proposal"
    )]
    MixedAead(Protocol),
    #[error(
        "an integrity algorithm is mandatory in IKE proposals with classic (non-AEAD) encryption algorithms"
    )]
    NoIntegrity,
    #[error("a PRF algorithm is mandatory in IKE proposals")]
    NoPrf,
    #[error("a DH group is mandatory in IKE proposals")]
    NoDh,
    #[error("'null' encryption protects nothing (vc refuses it)")]
    NullEncryption,
    #[error(
        "classic ESP encryption without an integrity algorithm is unauthenticated (vc refuses it; add e.g. sha256)"
    )]
    EspNoIntegrity,
}

impl ProposalError {
    /// Whether charon itself refuses the proposal (the others are vc's own rules).
    #[must_use]
    pub fn charon_refuses(&self) -> bool {
        !matches!(
            self,
            ProposalError::NullEncryption | ProposalError::EspNoIntegrity
        )
    }
}

/// Looks a keyword up in strongSwan's table.
#[must_use]
pub fn keyword(name: &str) -> Option<Transform> {
    KEYWORDS.iter().find(|(k, _)| *k == name).map(|(_, t)| *t)
}

/// Checks one proposal as charon's `proposal_create_from_string()` would, plus vc's rules.
pub fn check(protocol: Protocol, proposal: &str) -> Result<(), ProposalError> {
    // charon's `default` keyword (case-insensitive) expands to its built-in proposals.
    if proposal.eq_ignore_ascii_case("default") {
        return Ok(());
    }
    // charon's tokenizer: '-' separates, spaces around a token are trimmed, empty tokens
    // (a doubled or trailing '-') are skipped.
    let mut transforms = Vec::new();
    for token in proposal
        .split('-')
        .map(|t| t.trim_matches(' '))
        .filter(|t| !t.is_empty())
    {
        transforms.push(keyword(token).ok_or_else(|| ProposalError::Unknown(token.to_string()))?);
    }
    if transforms.is_empty() {
        return Err(ProposalError::Empty);
    }
    let (mut any_enc, mut all_aead, mut null) = (false, true, false);
    let (mut integ, mut integ_prf, mut prf, mut dh) = (false, false, false, false);
    for t in &transforms {
        match *t {
            Transform::Encryption { aead, null: n } => {
                any_enc = true;
                all_aead &= aead;
                null |= n;
            }
            Transform::Integrity { implies_prf } => {
                integ = true;
                integ_prf |= implies_prf;
            }
            Transform::Prf => prf = true,
            Transform::KeyExchange { none } => dh |= !none,
            Transform::Esn => {}
        }
    }
    let any_aead = transforms
        .iter()
        .any(|t| matches!(t, Transform::Encryption { aead: true, .. }));
    // The order of checks is charon's, so the first message is the one charon would log.
    if protocol == Protocol::Ike {
        if !prf && !integ_prf {
            return Err(ProposalError::NoPrf);
        }
        if !dh {
            return Err(ProposalError::NoDh);
        }
    }
    if !any_enc {
        return Err(ProposalError::NoEncryption(protocol));
    }
    if any_aead && !all_aead {
        return Err(ProposalError::MixedAead(protocol));
    }
    if !all_aead && !integ {
        if protocol == Protocol::Ike {
            return Err(ProposalError::NoIntegrity);
        }
        if !null {
            return Err(ProposalError::EspNoIntegrity);
        }
    }
    if null {
        return Err(ProposalError::NullEncryption);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{ProposalError as E, Protocol::*, check};

    #[test]
    fn accepts_what_cisco_and_strongswan_agree_on() {
        for p in [
            "aes256gcm16-prfsha384-ecp384",
            "aes128gcm16-prfsha256-x25519",
            "aes256-sha256-modp2048",
            "aes256-sha512-prfsha512-ecp521",
            "aes128-aes256-sha256-sha384-modp2048-ecp256",
            "default",
            "DEFAULT",
            "aes256--sha256-modp2048-", // charon skips empty tokens
            " aes256 - sha256-modp2048",
        ] {
            assert_eq!(check(Ike, p), Ok(()), "{p}");
        }
        for p in [
            "aes256gcm16",
            "aes256gcm16-ecp384",
            "aes256-sha256",
            "aes256-sha256-modp2048-esn",
            "aes256gcm16-prfsha256", // charon drops a PRF from an ESP proposal
            "aes128gmac",
            "default",
        ] {
            assert_eq!(check(Esp, p), Ok(()), "{p}");
        }
    }

    #[test]
    fn refuses_each_rule_with_its_message() {
        let cases = [
            (Ike, "", E::Empty),
            (Ike, "-", E::Empty),
            (Ike, "aes257-sha256-modp2048", E::Unknown("aes257".into())),
            (Ike, "AES256-sha256-modp2048", E::Unknown("AES256".into())),
            (Ike, "aes256gcm16-ecp384", E::NoPrf),
            (Ike, "aes256-sha256_96-modp2048", E::NoPrf),
            (Ike, "aes256gcm16-prfsha384", E::NoDh),
            (Ike, "aes256gcm16-prfsha384-none", E::NoDh),
            (Ike, "sha256-modp2048", E::NoEncryption(Ike)),
            (Esp, "sha256", E::NoEncryption(Esp)),
            (Ike, "aes256gcm16-aes256-sha256-modp2048", E::MixedAead(Ike)),
            (Esp, "aes256gcm16-aes256-sha256", E::MixedAead(Esp)),
            (Ike, "aes256-prfsha256-modp2048", E::NoIntegrity),
            (Ike, "null-sha256-modp2048", E::NullEncryption),
            (Esp, "null-sha256", E::NullEncryption),
            (Esp, "aes256", E::EspNoIntegrity),
        ];
        for (proto, p, want) in cases {
            assert_eq!(check(proto, p), Err(want.clone()), "{proto} {p:?}");
        }
        assert_eq!(
            E::NoDh.to_string(),
            "a DH group is mandatory in IKE proposals"
        );
        assert_eq!(
            E::Unknown("x".into()).to_string(),
            "algorithm 'x' not recognized"
        );
    }
}
