//! Config parsing, accessors and one test per fault class (R23).
use std::{fmt::Write as _, net::Ipv4Addr};

use super::{
    DeploymentModel, FaultKind, Mode, Secret, TunnelId, export_toml, parse,
    proposal::ProposalError, validate,
};

/// A valid one-CPE config with inline secrets.
pub(crate) const VALID: &str = r#"
region = "EMEA"

[deployment]
model = "one-cpe"

[interfaces]
wan = "eth0"
lan = "eth1"

[cisco]
prefix = "198.18.7.0/24"
dc1_prefix = "198.18.7.0/25"
dc2_prefix = "198.18.7.128/25"

[tunnel.a]
cpe_ipsec_address = "203.0.113.10"
cpe_gre_address = "203.0.113.10"
dc_ipsec_address = "192.0.2.10"
dc_gre_address = "192.0.2.11"
cpe_tunnel_ip = "100.64.10.2/30"
dc_tunnel_ip = "100.64.10.1/30"
cisco_asn = 64600
cpe_asn = 65010
ike_psk = "psk-a-0123456789"
bgp_password = "bgp-a-0123456789"
ike_proposals = ["aes256gcm16-prfsha384-ecp384"]
esp_proposals = ["aes256gcm16"]

[tunnel.b]
cpe_ipsec_address = "203.0.113.10"
cpe_gre_address = "203.0.113.10"
dc_ipsec_address = "192.0.2.20"
dc_gre_address = "192.0.2.21"
cpe_tunnel_ip = "100.64.10.6/30"
dc_tunnel_ip = "100.64.10.5/30"
cisco_asn = 64601
cpe_asn = 65010
ike_psk = "psk-b-0123456789"
bgp_password = "bgp-b-0123456789"
ike_proposals = ["aes256gcm16-prfsha384-ecp384"]
esp_proposals = ["aes256gcm16"]
"#;

/// `VALID` with the first line of tunnel A (or B) starting with `key =` replaced.
fn with(tunnel: &str, key: &str, value: &str) -> String {
    let section = format!("[tunnel.{tunnel}]");
    let start = VALID.find(&section).expect("section");
    let mut out = String::new();
    let mut done = false;
    for (i, line) in VALID.lines().enumerate() {
        let offset: usize = VALID.lines().take(i).map(|l| l.len() + 1).sum();
        if !done && offset > start && line.starts_with(&format!("{key} =")) {
            let _ = writeln!(out, "{key} = {value}");
            done = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(done, "no {key} in tunnel {tunnel}");
    out
}

/// The faults of a text that parses.
fn faults(text: &str) -> Vec<(String, FaultKind)> {
    let config = parse(text).unwrap_or_else(|e| panic!("parse: {e}"));
    match validate(&config) {
        Ok(()) => vec![],
        Err(f) => f.0.into_iter().map(|f| (f.field, f.kind)).collect(),
    }
}

/// Asserts exactly one fault, on `field`, and returns it with its message.
fn one_fault(text: &str, field: &str) -> (FaultKind, String) {
    let all = faults(text);
    assert_eq!(all.len(), 1, "expected one fault on {field}, got {all:#?}");
    let (f, kind) = all.into_iter().next().expect("one");
    assert_eq!(f, field);
    let msg = format!("{f}: {kind}");
    (kind, msg)
}

#[test]
fn valid_config_has_no_fault_and_useful_accessors() {
    let c = parse(VALID).expect("parse");
    assert_eq!(validate(&c), Ok(()));
    assert_eq!(c.mode, Mode::Ipsec);
    assert_eq!(c.deployment.model, DeploymentModel::OneCpe);
    let ids: Vec<TunnelId> = c.terminated().map(|(id, _)| id).collect();
    assert_eq!(ids, [TunnelId::A, TunnelId::B]);
    assert_eq!(TunnelId::A.index(), 0);
    assert_eq!(TunnelId::B.index(), 1);
    assert_eq!(TunnelId::from_index(1), Some(TunnelId::B));
    assert_eq!(c.dc_prefix(TunnelId::B).to_string(), "198.18.7.128/25");
    assert_eq!(c.cisco_prefix(TunnelId::A).to_string(), "198.18.7.0/24");
    let a = c.tunnel(TunnelId::A).expect("a");
    assert_eq!(a.local_ike_id(), "203.0.113.10");
    assert_eq!(a.remote_ike_id(), "192.0.2.10");
    assert_eq!(a.local_address(), Ipv4Addr::new(203, 0, 113, 10));
    assert_eq!(a.tunnel_subnet().to_string(), "100.64.10.0/30");
    // defaults
    assert_eq!((a.mss, a.mtu, a.replay_window), (1350, 1400, 1024));
    assert_eq!(
        (a.ike_lifetime_s, a.esp_lifetime_s, a.dpd_interval_s),
        (86_400, 3_600, 10)
    );
    assert_eq!(
        a.ike_psk
            .as_ref()
            .map(|s| s.resolve().expect("psk").expose().to_string()),
        Some("psk-a-0123456789".into())
    );
}

#[test]
fn two_cpes_terminates_only_the_named_tunnel() {
    let text = VALID.replace(
        "model = \"one-cpe\"",
        "model = \"two-cpes\"\ntunnel = \"b\"",
    );
    let c = parse(&text).expect("parse");
    assert_eq!(validate(&c), Ok(()));
    let ids: Vec<TunnelId> = c.terminated().map(|(id, _)| id).collect();
    assert_eq!(ids, [TunnelId::B]);
    // Only the named tunnel is required.
    let start = text.find("[tunnel.a]").expect("a");
    let end = text.find("[tunnel.b]").expect("b");
    let only_b = format!("{}{}", &text[..start], &text[end..]);
    assert_eq!(faults(&only_b), vec![]);
    let (kind, msg) = one_fault(
        &only_b.replace("tunnel = \"b\"", "tunnel = \"a\""),
        "tunnel.a",
    );
    assert!(matches!(kind, FaultKind::Missing(_)), "{msg}");
}

#[test]
fn deployment_model_faults() {
    let (_, msg) = one_fault(
        &VALID.replace("model = \"one-cpe\"", "model = \"two-cpes\""),
        "deployment.tunnel",
    );
    assert!(
        msg.contains("needs the tunnel this CPE terminates"),
        "{msg}"
    );
    let (_, msg) = one_fault(
        &VALID.replace("model = \"one-cpe\"", "model = \"one-cpe\"\ntunnel = \"a\""),
        "deployment.tunnel",
    );
    assert!(msg.contains("not allowed with model one-cpe"), "{msg}");
    let start = VALID.find("[tunnel.b]").expect("b");
    let (_, msg) = one_fault(&VALID[..start], "tunnel.b");
    assert_eq!(
        msg,
        "tunnel.b: missing: tunnel B (DC2): this CPE terminates it"
    );
}

#[test]
fn asn_outside_private_range() {
    let (kind, msg) = one_fault(&with("a", "cisco_asn", "64511"), "tunnel.a.cisco_asn");
    assert_eq!(kind, FaultKind::AsnNotPrivate(64511));
    assert_eq!(
        msg,
        "tunnel.a.cisco_asn: ASN 64511 is outside the private range 64512–65534 that Cisco assigns"
    );
    let (kind, _) = one_fault(&with("b", "cpe_asn", "65535"), "tunnel.b.cpe_asn");
    assert_eq!(kind, FaultKind::AsnNotPrivate(65535));
    let (kind, _) = one_fault(&with("b", "cpe_asn", "4200000000"), "tunnel.b.cpe_asn");
    assert_eq!(kind, FaultKind::AsnNotPrivate(4_200_000_000));
}

#[test]
fn asn_equal_on_both_sides() {
    let (kind, msg) = one_fault(&with("a", "cpe_asn", "64600"), "tunnel.a.cpe_asn");
    assert_eq!(kind, FaultKind::AsnEqual(64600));
    assert_eq!(
        msg,
        "tunnel.a.cpe_asn: equals cisco_asn (64600): eBGP needs two different ASNs"
    );
}

#[test]
fn tunnel_ip_outside_shared_space() {
    let text = with("a", "cpe_tunnel_ip", "\"10.0.0.2/30\"");
    let text = text.replacen(
        "dc_tunnel_ip = \"100.64.10.1/30\"",
        "dc_tunnel_ip = \"10.0.0.1/30\"",
        1,
    );
    let all = faults(&text);
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_eq!(all[0].0, "tunnel.a.cpe_tunnel_ip");
    assert_eq!(
        all[0].1.to_string(),
        "10.0.0.2/30 is outside the shared address space 100.64.0.0/10 where Cisco allocates tunnel IPs"
    );
}

#[test]
fn tunnel_ips_not_in_one_subnet() {
    let (kind, msg) = one_fault(
        &with("a", "dc_tunnel_ip", "\"100.64.10.5/30\""),
        "tunnel.a.dc_tunnel_ip",
    );
    assert!(matches!(kind, FaultKind::TunnelNotOneSubnet { .. }));
    assert_eq!(
        msg,
        "tunnel.a.dc_tunnel_ip: 100.64.10.2/30 and 100.64.10.5/30 are not in one subnet"
    );
    // Different masks are different subnets too.
    let text = with("a", "dc_tunnel_ip", "\"100.64.10.1/31\"");
    assert!(matches!(
        one_fault(&text, "tunnel.a.dc_tunnel_ip").0,
        FaultKind::TunnelNotOneSubnet { .. }
    ));
}

#[test]
fn tunnel_ip_network_or_broadcast_of_a_slash30() {
    let (kind, msg) = one_fault(
        &with("a", "cpe_tunnel_ip", "\"100.64.10.0/30\""),
        "tunnel.a.cpe_tunnel_ip",
    );
    assert_eq!(
        kind,
        FaultKind::TunnelIpNetwork(Ipv4Addr::new(100, 64, 10, 0))
    );
    assert_eq!(
        msg,
        "tunnel.a.cpe_tunnel_ip: 100.64.10.0 is the network address of its /30"
    );
    let (kind, _) = one_fault(
        &with("a", "cpe_tunnel_ip", "\"100.64.10.3/30\""),
        "tunnel.a.cpe_tunnel_ip",
    );
    assert_eq!(
        kind,
        FaultKind::TunnelIpBroadcast(Ipv4Addr::new(100, 64, 10, 3))
    );
}

#[test]
fn slash31_uses_both_addresses_and_other_masks_are_refused() {
    let text = with("a", "cpe_tunnel_ip", "\"100.64.10.0/31\"");
    let text = text.replacen(
        "dc_tunnel_ip = \"100.64.10.1/30\"",
        "dc_tunnel_ip = \"100.64.10.1/31\"",
        1,
    );
    assert_eq!(faults(&text), vec![]);
    let text = with("a", "cpe_tunnel_ip", "\"100.64.10.2/29\"");
    let text = text.replacen(
        "dc_tunnel_ip = \"100.64.10.1/30\"",
        "dc_tunnel_ip = \"100.64.10.1/29\"",
        1,
    );
    let all = faults(&text);
    assert_eq!(
        all[0],
        ("tunnel.a.cpe_tunnel_ip".into(), FaultKind::TunnelMask(29))
    );
    assert_eq!(
        all[0].1.to_string(),
        "mask /29: Cisco allocates a /30 or a /31"
    );
}

#[test]
fn tunnel_subnets_of_a_and_b_must_not_overlap() {
    let text = with("b", "cpe_tunnel_ip", "\"100.64.10.2/30\"");
    let text = with_b_dc_tunnel(&text, "\"100.64.10.1/30\"");
    let all = faults(&text);
    assert!(
        all.iter().any(|(f, k)| f == "tunnel.b.cpe_tunnel_ip"
            && matches!(k, FaultKind::TunnelSubnetOverlap(..))),
        "{all:#?}"
    );
}

fn with_b_dc_tunnel(text: &str, value: &str) -> String {
    text.replacen(
        "dc_tunnel_ip = \"100.64.10.5/30\"",
        &format!("dc_tunnel_ip = {value}"),
        1,
    )
}

#[test]
fn slash25s_must_be_the_two_halves_of_the_slash24() {
    let (kind, msg) = one_fault(
        &VALID.replace(
            "dc2_prefix = \"198.18.7.128/25\"",
            "dc2_prefix = \"198.18.8.128/25\"",
        ),
        "cisco.dc2_prefix",
    );
    assert!(matches!(kind, FaultKind::HalfOutside { .. }));
    assert_eq!(
        msg,
        "cisco.dc2_prefix: 198.18.8.128/25 is not inside the Cisco /24 198.18.7.0/24"
    );
    let (_, msg) = one_fault(
        &VALID.replace(
            "dc2_prefix = \"198.18.7.128/25\"",
            "dc2_prefix = \"198.18.7.0/25\"",
        ),
        "cisco.dc2_prefix",
    );
    assert_eq!(
        msg,
        "cisco.dc2_prefix: 198.18.7.0/25 is also dc1_prefix: the /25s must be the two halves of the /24"
    );
    let (_, msg) = one_fault(
        &VALID.replace(
            "dc1_prefix = \"198.18.7.0/25\"",
            "dc1_prefix = \"198.18.7.0/26\"",
        ),
        "cisco.dc1_prefix",
    );
    assert_eq!(msg, "cisco.dc1_prefix: 198.18.7.0/26 is not a /25");
    let (_, msg) = one_fault(
        &VALID.replace("prefix = \"198.18.7.0/24\"", "prefix = \"198.18.7.0/23\""),
        "cisco.prefix",
    );
    assert_eq!(msg, "cisco.prefix: 198.18.7.0/23 is not a /24");
    let (_, msg) = one_fault(
        &VALID.replace(
            "dc2_prefix = \"198.18.7.128/25\"",
            "dc2_prefix = \"198.18.7.129/25\"",
        ),
        "cisco.dc2_prefix",
    );
    assert_eq!(
        msg,
        "cisco.dc2_prefix: 198.18.7.129/25 has host bits set (did you mean 198.18.7.128/25?)"
    );
}

#[test]
fn duplicate_addresses() {
    // Within a tunnel: a CPE address that is also the DC's.
    let (kind, msg) = one_fault(
        &with("a", "dc_gre_address", "\"203.0.113.10\""),
        "tunnel.a.dc_gre_address",
    );
    assert!(matches!(kind, FaultKind::DuplicateAddress { .. }));
    assert_eq!(
        msg,
        "tunnel.a.dc_gre_address: 203.0.113.10 is also tunnel.a.cpe_ipsec_address"
    );
    // Across tunnels: two DCs with one address.
    let (_, msg) = one_fault(
        &with("b", "dc_ipsec_address", "\"192.0.2.10\""),
        "tunnel.b.dc_ipsec_address",
    );
    assert_eq!(
        msg,
        "tunnel.b.dc_ipsec_address: 192.0.2.10 is also tunnel.a.dc_ipsec_address"
    );
    // Same tunnel IP on both ends.
    let (_, msg) = one_fault(
        &with("a", "dc_tunnel_ip", "\"100.64.10.2/30\""),
        "tunnel.a.dc_tunnel_ip",
    );
    assert_eq!(
        msg,
        "tunnel.a.dc_tunnel_ip: 100.64.10.2 is also tunnel.a.cpe_tunnel_ip"
    );
    // A GRE transport IP that differs from the IPsec address is fine; one CPE address for both
    // tunnels too (VALID has it).
    assert_eq!(
        faults(&with("a", "cpe_gre_address", "\"203.0.113.11\"")),
        vec![]
    );
}

#[test]
fn missing_or_non_unicast_addresses() {
    let text = VALID.replacen("dc_gre_address = \"192.0.2.11\"\n", "", 1);
    let err = parse(&text).expect_err("missing field").to_string();
    assert!(err.contains("missing field `dc_gre_address`"), "{err}");
    let (kind, _) = one_fault(
        &with("a", "dc_gre_address", "\"0.0.0.0\""),
        "tunnel.a.dc_gre_address",
    );
    assert_eq!(kind, FaultKind::NotUnicast(Ipv4Addr::UNSPECIFIED));
    let err = parse(&with("a", "dc_gre_address", "\"192.0.2\""))
        .expect_err("bad address")
        .to_string();
    assert!(err.contains("invalid IPv4 address syntax"), "{err}");
}

#[test]
fn unknown_keys_are_rejected_with_their_name_and_place() {
    let err = parse(&VALID.replace("cisco_asn = 64600", "cisco_asn = 64600\ncisco_as = 1"))
        .expect_err("unknown key")
        .to_string();
    assert!(err.contains("unknown field `cisco_as`"), "{err}");
    assert!(err.contains("line 24"), "{err}");
    let err = parse(&format!("{VALID}\n[extra]\nx = 1\n"))
        .expect_err("unknown table")
        .to_string();
    assert!(err.contains("unknown field `extra`"), "{err}");
    let err = parse(&with("a", "ike_psk", "{ path = \"/x\" }"))
        .expect_err("bad secret")
        .to_string();
    assert!(
        err.contains("unknown field `path`, expected `file` or `env`"),
        "{err}"
    );
    let err = parse(&with("a", "ike_psk", "{ file = \"/x\", env = \"Y\" }"))
        .expect_err("two sources")
        .to_string();
    assert!(err.contains("a secret has exactly one source"), "{err}");
}

#[test]
fn proposals_strongswan_would_not_parse() {
    let (kind, msg) = one_fault(
        &with("a", "ike_proposals", "[\"aes256gcm16-ecp384\"]"),
        "tunnel.a.ike_proposals",
    );
    assert!(matches!(
        kind,
        FaultKind::Proposal {
            error: ProposalError::NoPrf,
            ..
        }
    ));
    assert_eq!(
        msg,
        "tunnel.a.ike_proposals: proposal 0 \"aes256gcm16-ecp384\": a PRF algorithm is mandatory in IKE proposals"
    );
    let (_, msg) = one_fault(
        &with("b", "esp_proposals", "[\"aes256gcm16\", \"aes256-sha265\"]"),
        "tunnel.b.esp_proposals",
    );
    assert_eq!(
        msg,
        "tunnel.b.esp_proposals: proposal 1 \"aes256-sha265\": algorithm 'sha265' not recognized"
    );
    let (kind, _) = one_fault(&with("a", "esp_proposals", "[]"), "tunnel.a.esp_proposals");
    assert!(matches!(kind, FaultKind::Missing(_)));
}

#[test]
fn mss_and_mtu_out_of_range() {
    let text = VALID.replace(
        "esp_proposals = [\"aes256gcm16\"]\n\n[tunnel.b]",
        "esp_proposals = [\"aes256gcm16\"]\nmss = 1380\n\n[tunnel.b]",
    );
    let (kind, msg) = one_fault(&text, "tunnel.a.mss");
    assert_eq!(
        kind,
        FaultKind::MssAboveMtu {
            mss: 1380,
            mtu: 1400,
            max: 1360
        }
    );
    assert_eq!(
        msg,
        "tunnel.a.mss: 1380 does not fit the tunnel mtu 1400 (at most mtu - 40 = 1360)"
    );
    let text = VALID.replace(
        "esp_proposals = [\"aes256gcm16\"]\n\n[tunnel.b]",
        "esp_proposals = [\"aes256gcm16\"]\nmtu = 1500\n\n[tunnel.b]",
    );
    let (_, msg) = one_fault(&text, "tunnel.a.mtu");
    assert_eq!(msg, "tunnel.a.mtu: 1500 is outside 576–1476");
    let text = VALID.replace(
        "esp_proposals = [\"aes256gcm16\"]\n\n[tunnel.b]",
        "esp_proposals = [\"aes256gcm16\"]\nmss = 100\n\n[tunnel.b]",
    );
    let (_, msg) = one_fault(&text, "tunnel.a.mss");
    assert_eq!(msg, "tunnel.a.mss: 100 is outside 536–1436");
    let err = parse(&VALID.replace(
        "esp_proposals = [\"aes256gcm16\"]\n\n[tunnel.b]",
        "esp_proposals = [\"aes256gcm16\"]\nmtu = 70000\n\n[tunnel.b]",
    ))
    .expect_err("u16")
    .to_string();
    assert!(err.contains("mtu"), "{err}");
}

#[test]
fn secrets_are_checked_but_never_shown() {
    let text = with("a", "ike_psk", "{ env = \"VC_TEST_SURELY_UNSET_PSK\" }");
    let (_, msg) = one_fault(&text, "tunnel.a.ike_psk");
    assert_eq!(
        msg,
        "tunnel.a.ike_psk: cannot be resolved (env VC_TEST_SURELY_UNSET_PSK): the environment variable VC_TEST_SURELY_UNSET_PSK is not set"
    );
    let text = with("a", "ike_psk", "{ file = \"/nonexistent/vc-psk\" }");
    let (_, msg) = one_fault(&text, "tunnel.a.ike_psk");
    assert!(
        msg.starts_with(
            "tunnel.a.ike_psk: cannot be resolved (file /nonexistent/vc-psk): No such file"
        ),
        "{msg}"
    );
    let (_, msg) = one_fault(&with("a", "ike_psk", "\"\""), "tunnel.a.ike_psk");
    assert!(msg.ends_with("the secret is empty"), "{msg}");
    let long = "x".repeat(81);
    let (_, msg) = one_fault(
        &with("a", "bgp_password", &format!("\"{long}\"")),
        "tunnel.a.bgp_password",
    );
    assert_eq!(
        msg,
        "tunnel.a.bgp_password: is 81 bytes long; TCP-MD5 allows at most 80"
    );
    let start = VALID.find("[tunnel.b]").expect("b");
    let no_psk =
        VALID[..start].replacen("ike_psk = \"psk-a-0123456789\"\n", "", 1) + &VALID[start..];
    let (_, msg) = one_fault(&no_psk, "tunnel.a.ike_psk");
    assert_eq!(
        msg,
        "tunnel.a.ike_psk: missing: the IKE pre-shared key (mode ipsec)"
    );

    // Debug and Display never print a secret, resolved or not.
    let c = parse(VALID).expect("parse");
    let debug = format!("{c:?}");
    assert!(
        !debug.contains("psk-a-0123456789") && !debug.contains("bgp-a-0123456789"),
        "{debug}"
    );
    assert!(debug.contains("<redacted>"));
    let value = Secret::inline("hunter2").resolve().expect("value");
    assert_eq!(format!("{value:?} {value}"), "<redacted> <redacted>");
}

#[test]
fn secret_file_loses_its_trailing_newline() {
    let path = std::env::temp_dir().join(format!("vc-secret-{}", std::process::id()));
    std::fs::write(&path, "from-a-file\n").expect("write");
    let value = Secret::file(&path).resolve().expect("resolve");
    std::fs::remove_file(&path).expect("rm");
    assert_eq!(value.expose(), "from-a-file");
}

#[test]
fn external_ipsec_needs_no_psk_or_proposals() {
    let stripped: String = VALID
        .lines()
        .filter(|l| !l.starts_with("ike_psk") && !l.contains("_proposals"))
        .fold(String::new(), |mut out, l| {
            let _ = writeln!(out, "{l}");
            out
        });
    let text = format!("mode = \"external-ipsec\"\n{stripped}");
    assert_eq!(faults(&text), vec![]);
}

#[test]
fn export_has_no_secret_and_reads_back() {
    let c = parse(VALID).expect("parse");
    let out = export_toml(&c).expect("export");
    for secret in [
        "psk-a-0123456789",
        "bgp-a-0123456789",
        "psk-b-0123456789",
        "bgp-b-0123456789",
    ] {
        assert!(!out.contains(secret), "{out}");
    }
    assert!(
        !out.contains("ike_psk =") && !out.contains("bgp_password ="),
        "{out}"
    );
    let back = parse(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
    let mut expected = c.clone();
    for t in [&mut expected.tunnel.a, &mut expected.tunnel.b]
        .into_iter()
        .flatten()
    {
        t.ike_psk = None;
        t.bgp_password = None;
    }
    assert_eq!(back, expected);
}

#[test]
fn the_shipped_example_is_valid() {
    let text = include_str!("../../../vc.example.toml");
    let c = parse(text).unwrap_or_else(|e| panic!("{e}"));
    // The example takes its secrets from the environment; check the rest here and the
    // secrets in the check-config CLI test, which sets them.
    let mut c2 = c.clone();
    for t in [&mut c2.tunnel.a, &mut c2.tunnel.b].into_iter().flatten() {
        t.ike_psk = Some(Secret::inline("x"));
        t.bgp_password = Some(Secret::inline("y"));
    }
    assert_eq!(validate(&c2), Ok(()));
}

/// The shipped example names its secrets by environment variables an admin's shell does not
/// have: the read-only commands' validation never reads them, the others' reports each one.
#[test]
fn unread_secrets_are_no_fault() {
    let text = include_str!("../../../vc.example.toml")
        .replace("VC_PSK_", "VC_TEST_UNSET_PSK_")
        .replace("VC_BGP_PASSWORD_", "VC_TEST_UNSET_BGP_PASSWORD_");
    let config = parse(&text).expect("the example parses");
    super::validate_with(&config, super::Secrets::Unread).expect("valid without its secrets");
    let faults = validate(&config).expect_err("the secrets are not set");
    let secret_faults = faults
        .0
        .iter()
        .filter(|f| matches!(f.kind, FaultKind::Secret { .. }))
        .count();
    assert_eq!(secret_faults, 4, "{faults}");
}

#[test]
fn a_tunnels_own_wan_device() {
    // Tunnel B on another ISP: its own device, the host's for tunnel A.
    let text = VALID.replace("[tunnel.b]\n", "[tunnel.b]\nwan = \"eth2\"\n");
    let config = parse(&text).expect("parse");
    assert!(faults(&text).is_empty());
    let wan = |id| {
        config
            .tunnel(id)
            .expect("tunnel")
            .wan(&config.interfaces)
            .to_string()
    };
    assert_eq!(
        (wan(TunnelId::A), wan(TunnelId::B)),
        ("eth0".into(), "eth2".into())
    );

    let (kind, msg) = one_fault(
        &VALID.replace("[tunnel.b]\n", "[tunnel.b]\nwan = \"eth1\"\n"),
        "tunnel.b.wan",
    );
    assert_eq!(kind, FaultKind::InterfaceSame("eth1".into()), "{msg}");
    let (kind, _) = one_fault(
        &VALID.replace(
            "[tunnel.a]\n",
            "[tunnel.a]\nwan = \"a-name-far-too-long\"\n",
        ),
        "tunnel.a.wan",
    );
    assert_eq!(kind, FaultKind::InterfaceName("a-name-far-too-long".into()));
}

/// A second region's block: AMER's /24 and two tunnels to its own DCs.
pub(crate) const SECOND_REGION: &str = r#"
[[extra_region]]
region = "AMER"

[extra_region.cisco]
prefix = "198.18.9.0/24"
dc1_prefix = "198.18.9.0/25"
dc2_prefix = "198.18.9.128/25"

[extra_region.tunnel.a]
cpe_ipsec_address = "203.0.113.10"
cpe_gre_address = "203.0.113.10"
dc_ipsec_address = "192.0.2.30"
dc_gre_address = "192.0.2.31"
cpe_tunnel_ip = "100.64.30.2/30"
dc_tunnel_ip = "100.64.30.1/30"
cisco_asn = 64700
cpe_asn = 65010
ike_psk = "psk-c-0123456789"
bgp_password = "bgp-c-0123456789"
ike_proposals = ["aes256gcm16-prfsha384-ecp384"]
esp_proposals = ["aes256gcm16"]

[extra_region.tunnel.b]
cpe_ipsec_address = "203.0.113.10"
cpe_gre_address = "203.0.113.10"
dc_ipsec_address = "192.0.2.40"
dc_gre_address = "192.0.2.41"
cpe_tunnel_ip = "100.64.40.2/30"
dc_tunnel_ip = "100.64.40.1/30"
cisco_asn = 64701
cpe_asn = 65010
ike_psk = "psk-d-0123456789"
bgp_password = "bgp-d-0123456789"
ike_proposals = ["aes256gcm16-prfsha384-ecp384"]
esp_proposals = ["aes256gcm16"]
"#;

/// `VALID` with [`SECOND_REGION`] after it, the first `from` in the second region replaced.
pub(crate) fn two_regions(from: &str, to: &str) -> String {
    let second = SECOND_REGION.replacen(from, to, 1);
    assert!(
        from.is_empty() || second != SECOND_REGION,
        "no {from:?} in the second region"
    );
    format!("{VALID}{second}")
}

#[test]
fn a_second_region_adds_two_tunnels_with_their_own_names_and_prefixes() {
    use super::Side;
    let c = parse(&two_regions("", "")).expect("parse");
    assert_eq!(validate(&c), Ok(()));
    let ids: Vec<TunnelId> = c.terminated().map(|(id, _)| id).collect();
    let (c_a, c_b) = (TunnelId::new(1, Side::A), TunnelId::new(1, Side::B));
    assert_eq!(ids, [TunnelId::A, TunnelId::B, c_a, c_b]);
    assert_eq!(
        ids.iter().map(|id| id.index()).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    assert_eq!((c_a.key(), c_b.key()), ("r2-a", "r2-b"));
    assert_eq!(c_a.section(), "extra_region[0].tunnel.a");
    assert_eq!(c_b.to_string(), "B (DC2) of region 2");
    assert_eq!(c.regions(), "EMEA + AMER");
    assert_eq!(c.dc_prefix(c_b).to_string(), "198.18.9.128/25");
    assert_eq!(c.cisco_prefix(c_a).to_string(), "198.18.9.0/24");
    assert_eq!(c.cisco_prefix(TunnelId::B).to_string(), "198.18.7.0/24");
    let dc = |id| c.tunnel(id).map(|t| t.dc_ipsec_address.to_string());
    assert_eq!(dc(c_a).as_deref(), Some("192.0.2.30"));
    // The id is written as its key, in the status and anywhere else it is serialized.
    assert_eq!(serde_json::to_string(&c_b).expect("json"), "\"r2-b\"");
    assert_eq!(
        serde_json::from_str::<TunnelId>("\"R2-A\"").expect("id"),
        c_a
    );
    assert!(serde_json::from_str::<TunnelId>("\"r3-a\"").is_err());
    // `two-cpes` names a side: this CPE terminates it in every region.
    let two = two_regions("", "").replace(
        "model = \"one-cpe\"",
        "model = \"two-cpes\"\ntunnel = \"b\"",
    );
    let c = parse(&two).expect("parse");
    assert_eq!(validate(&c), Ok(()));
    let ids: Vec<TunnelId> = c.terminated().map(|(id, _)| id).collect();
    assert_eq!(ids, [TunnelId::B, c_b]);
}

#[test]
fn second_region_faults_name_its_fields() {
    // Its /24 is checked as the first region's; it must not overlap the first region's.
    let (kind, msg) = one_fault(
        &two_regions("prefix = \"198.18.9.0/24\"", "prefix = \"198.18.8.0/23\""),
        "extra_region[0].cisco.prefix",
    );
    assert!(matches!(kind, FaultKind::NotSlash24(_)), "{msg}");
    let (kind, msg) = one_fault(
        &two_regions(
            "prefix = \"198.18.9.0/24\"\ndc1_prefix = \"198.18.9.0/25\"\ndc2_prefix = \"198.18.9.128/25\"",
            "prefix = \"198.18.7.0/24\"\ndc1_prefix = \"198.18.7.0/25\"\ndc2_prefix = \"198.18.7.128/25\"",
        ),
        "extra_region[0].cisco.prefix",
    );
    assert!(matches!(kind, FaultKind::RegionPrefixOverlap(..)), "{msg}");
    assert!(msg.contains("cisco.prefix 198.18.7.0/24"), "{msg}");
    // Its own fields are checked, under its own path.
    let (kind, msg) = one_fault(
        &two_regions("cisco_asn = 64700", "cisco_asn = 65010"),
        "extra_region[0].tunnel.a.cpe_asn",
    );
    assert!(matches!(kind, FaultKind::AsnEqual(65010)), "{msg}");
    // Across regions: a DC address shared with the first region's DC, a tunnel subnet that
    // overlaps one of the first region's.
    let (kind, msg) = one_fault(
        &two_regions(
            "dc_gre_address = \"192.0.2.41\"",
            "dc_gre_address = \"192.0.2.21\"",
        ),
        "extra_region[0].tunnel.b.dc_gre_address",
    );
    assert!(matches!(kind, FaultKind::DuplicateAddress { .. }), "{msg}");
    let text = two_regions(
        "cpe_tunnel_ip = \"100.64.40.2/30\"",
        "cpe_tunnel_ip = \"100.64.10.6/30\"",
    )
    .replacen(
        "dc_tunnel_ip = \"100.64.40.1/30\"",
        "dc_tunnel_ip = \"100.64.10.5/30\"",
        1,
    );
    let (kind, msg) = one_fault(&text, "extra_region[0].tunnel.b.cpe_tunnel_ip");
    assert!(matches!(kind, FaultKind::TunnelSubnetOverlap(..)), "{msg}");
    assert!(msg.contains("tunnel B (DC2)"), "{msg}");
    // A one-CPE host terminates both of its tunnels.
    let start = SECOND_REGION.find("[extra_region.tunnel.b]").expect("b");
    let text = format!("{VALID}{}", &SECOND_REGION[..start]);
    let (kind, msg) = one_fault(&text, "extra_region[0].tunnel.b");
    assert!(matches!(kind, FaultKind::Missing(_)), "{msg}");
    // Named like the first region; and at most one extra region.
    let (kind, msg) = one_fault(
        &two_regions("region = \"AMER\"", "region = \"emea\""),
        "extra_region[0].region",
    );
    assert!(matches!(kind, FaultKind::RegionSame(_)), "{msg}");
    let third = SECOND_REGION
        .replace("AMER", "APJC")
        .replace("198.18.9.", "198.18.11.")
        .replace("192.0.2.3", "192.0.2.5")
        .replace("192.0.2.4", "192.0.2.6")
        .replace("100.64.30.", "100.64.50.")
        .replace("100.64.40.", "100.64.60.");
    let all = faults(&format!("{}{third}", two_regions("", "")));
    assert!(
        all.iter().any(|(f, k)| f == "extra_region"
            && matches!(k, FaultKind::TooManyRegions { given: 3, max: 2 })),
        "{all:#?}"
    );
}
