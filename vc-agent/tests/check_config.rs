//! `vc-agent check-config` and `export-config` as an admin runs them (R23): the shipped
//! example passes; each fault class gives exit status 1 and its precise message; the export
//! carries no secret. One test per fault class.
use std::process::{Command, Output};

const EXAMPLE: &str = include_str!("../../vc.example.toml");
const SECRETS: [(&str, &str); 4] = [
    ("VC_PSK_A", "psk-A-Jq7c1Pz"),
    ("VC_PSK_B", "psk-B-Lm2v8Wq"),
    ("VC_BGP_PASSWORD_A", "bgp-A-Xe4r6Ty"),
    ("VC_BGP_PASSWORD_B", "bgp-B-Nb3k5Hs"),
];

fn run(subcommand: &str, text: &str) -> Output {
    let dir =
        std::env::temp_dir().join(format!("vc-check-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("vc.toml");
    std::fs::write(&path, text).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_vc-agent"))
        .args([subcommand, "-c"])
        .arg(&path)
        .envs(SECRETS)
        .output()
        .expect("vc-agent");
    std::fs::remove_dir_all(&dir).expect("cleanup");
    out
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// `EXAMPLE` with one substitution (which must apply).
fn example_with(from: &str, to: &str) -> String {
    assert!(EXAMPLE.contains(from), "the example has no {from:?}");
    EXAMPLE.replacen(from, to, 1)
}

/// Runs check-config and expects exit status 1 with exactly the given fault lines (the
/// lines after the file name).
fn faults(text: &str, expected: &[&str]) {
    let out = run("check-config", text);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .map(|l| l.split_once("vc.toml: ").map_or(l, |(_, rest)| rest))
        .collect();
    assert_eq!(lines, expected, "{stderr}");
}

#[test]
fn the_example_passes() {
    let out = run("check-config", EXAMPLE);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("OK (region EMEA, mode ipsec, this CPE terminates A (DC1) and B (DC2))"),
        "{stdout}"
    );
}

#[test]
fn asn_outside_the_private_range() {
    faults(
        &example_with("cisco_asn = 64600", "cisco_asn = 100"),
        &[
            "tunnel.a.cisco_asn: ASN 100 is outside the private range 64512–65534 that Cisco assigns",
        ],
    );
}

#[test]
fn asn_equal_on_both_sides() {
    faults(
        &example_with("cisco_asn = 64601", "cisco_asn = 65010"),
        &["tunnel.b.cpe_asn: equals cisco_asn (65010): eBGP needs two different ASNs"],
    );
}

#[test]
fn tunnel_ip_outside_the_shared_address_space() {
    faults(
        &example_with(
            "cpe_tunnel_ip = \"100.64.10.2/30\"           # your tunnel IP and mask (/30 or /31)\ndc_tunnel_ip = \"100.64.10.1/30\"",
            "cpe_tunnel_ip = \"100.128.10.2/30\"\ndc_tunnel_ip = \"100.128.10.1/30\"",
        ),
        &[
            "tunnel.a.cpe_tunnel_ip: 100.128.10.2/30 is outside the shared address space 100.64.0.0/10 where Cisco allocates tunnel IPs",
            "tunnel.a.dc_tunnel_ip: 100.128.10.1/30 is outside the shared address space 100.64.0.0/10 where Cisco allocates tunnel IPs",
        ],
    );
}

#[test]
fn tunnel_ips_not_in_one_subnet() {
    faults(
        &example_with(
            "dc_tunnel_ip = \"100.64.10.5/30\"",
            "dc_tunnel_ip = \"100.64.10.9/30\"",
        ),
        &["tunnel.b.dc_tunnel_ip: 100.64.10.6/30 and 100.64.10.9/30 are not in one subnet"],
    );
}

#[test]
fn tunnel_ip_is_the_network_or_broadcast_address_of_a_slash30() {
    faults(
        &example_with(
            "cpe_tunnel_ip = \"100.64.10.6/30\"",
            "cpe_tunnel_ip = \"100.64.10.7/30\"",
        ),
        &["tunnel.b.cpe_tunnel_ip: 100.64.10.7 is the broadcast address of its /30"],
    );
    faults(
        &example_with(
            "cpe_tunnel_ip = \"100.64.10.6/30\"",
            "cpe_tunnel_ip = \"100.64.10.4/30\"",
        ),
        &["tunnel.b.cpe_tunnel_ip: 100.64.10.4 is the network address of its /30"],
    );
}

#[test]
fn slash25s_not_the_two_halves_of_the_slash24() {
    faults(
        &example_with(
            "dc2_prefix = \"198.18.7.128/25\"",
            "dc2_prefix = \"198.18.7.0/25\"",
        ),
        &[
            "cisco.dc2_prefix: 198.18.7.0/25 is also dc1_prefix: the /25s must be the two halves of the /24",
        ],
    );
    faults(
        &example_with(
            "dc1_prefix = \"198.18.7.0/25\"",
            "dc1_prefix = \"198.18.9.0/25\"",
        ),
        &["cisco.dc1_prefix: 198.18.9.0/25 is not inside the Cisco /24 198.18.7.0/24"],
    );
}

#[test]
fn duplicate_address() {
    faults(
        &example_with(
            "dc_ipsec_address = \"192.0.2.20\"",
            "dc_ipsec_address = \"192.0.2.10\"",
        ),
        &["tunnel.b.dc_ipsec_address: 192.0.2.10 is also tunnel.a.dc_ipsec_address"],
    );
}

#[test]
fn missing_address() {
    let out = run(
        "check-config",
        &example_with("dc_gre_address = \"192.0.2.21\"\n", ""),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("missing field `dc_gre_address`"),
        "{stderr}"
    );
    // The line of the `[tunnel.b]` table that lacks the field.
    let line = EXAMPLE
        .lines()
        .position(|l| l.starts_with("[tunnel.b]"))
        .expect("[tunnel.b] in the example")
        + 1;
    assert!(
        stderr.contains(&format!("line {line},")) && stderr.contains("(key tunnel.b)"),
        "names the table and its place: {stderr}"
    );
}

#[test]
fn unknown_key() {
    let out = run(
        "check-config",
        &example_with("mode = \"ipsec\"", "mode = \"ipsec\"\nmtu = 1400"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("unknown field `mtu`, expected one of `region`, `mode`"),
        "{stderr}"
    );
}

#[test]
fn proposal_strongswan_would_not_parse() {
    faults(
        &example_with(
            "esp_proposals = [\"aes256gcm16\"]",
            "esp_proposals = [\"aes256gcm16-aes256-sha256\"]",
        ),
        &[
            "tunnel.a.esp_proposals: proposal 0 \"aes256gcm16-aes256-sha256\": classic and combined-mode (AEAD) encryption algorithms can't be contained in the same ESP proposal",
        ],
    );
}

#[test]
fn mss_or_mtu_out_of_range() {
    faults(
        &example_with("# mss = 1350 ", "mss = 1400\nmtu = 1400 #"),
        &["tunnel.a.mss: 1400 does not fit the tunnel mtu 1400 (at most mtu - 40 = 1360)"],
    );
    faults(
        &example_with("# mtu = 1400 ", "mtu = 9000 #"),
        &["tunnel.a.mtu: 9000 is outside 576–1476"],
    );
}

#[test]
fn secret_that_cannot_be_read() {
    faults(
        &example_with(
            "ike_psk = { env = \"VC_PSK_B\" }",
            "ike_psk = { file = \"/nonexistent/psk-b\" }",
        ),
        &[
            "tunnel.b.ike_psk: cannot be resolved (file /nonexistent/psk-b): No such file or directory (os error 2)",
        ],
    );
}

#[test]
fn export_has_no_secret() {
    let out = run("export-config", EXAMPLE);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for (_, secret) in SECRETS {
        assert!(!stdout.contains(secret), "{stdout}");
    }
    assert!(
        !stdout.contains("ike_psk =") && !stdout.contains("bgp_password ="),
        "{stdout}"
    );
    assert!(stdout.contains("cisco_asn = 64600"), "{stdout}");
}

/// A PSK written without quotes is a TOML error: the line, the column and the key are named,
/// the PSK is not, by any command that reads the config (`run` fails before doing anything).
#[test]
fn a_toml_error_on_the_psk_line_never_prints_the_psk() {
    let psk = "Unquoted-Psk-Kw8x2Yv";
    let text = example_with(
        "ike_psk = { env = \"VC_PSK_A\" }",
        &format!("ike_psk = {psk}"),
    );
    let line = text
        .lines()
        .position(|l| l.contains(psk))
        .expect("the PSK line")
        + 1;
    for subcommand in ["check-config", "export-config", "run"] {
        let out = run(subcommand, &text);
        let shown = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(1), "{subcommand}: {shown}");
        assert!(
            !shown.contains(psk) && !shown.contains("Kw8x2"),
            "{subcommand} printed the PSK: {shown}"
        );
        assert!(
            shown.contains(&format!(
                "TOML error at line {line}, column 11 (key tunnel.a.ike_psk)"
            )),
            "{subcommand}: {shown}"
        );
    }
}

/// A secret file that group or others may read is named by `check-config` (which still
/// passes), and no longer once it is the owner's alone.
#[test]
fn a_secret_file_readable_by_others_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;

    let dir = std::env::temp_dir().join(format!("vc-check-perm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let psk = dir.join("psk-a");
    std::fs::write(&psk, "psk-from-a-file-Tq3\n").expect("psk");
    let chmod = |mode| {
        std::fs::set_permissions(&psk, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    chmod(0o644);
    let text = example_with(
        "ike_psk = { env = \"VC_PSK_A\" }",
        &format!("ike_psk = {{ file = \"{}\" }}", psk.display()),
    );
    let out = run("check-config", &text);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "warning: {} holds tunnel.a.ike_psk and is readable by group or others (mode 0644): \
             chmod 600 it",
            psk.display()
        )),
        "{stdout}"
    );
    assert!(!stdout.contains("Tq3"), "{stdout}");
    chmod(0o600);
    let out = run("check-config", &text);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !stdout.contains("warning"),
        "{stdout}"
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// The lab's files (`vc_testkit::region::config`) pass as an admin's would: the one-CPE file
/// and each two-CPE file; each of those terminates its own tunnel only and keeps apart what
/// two agents on one host must not share (pins, state, vc's charon).
#[test]
fn the_labs_files_pass() {
    use vc_testkit::region::{
        config::{self, Model, Options},
        plan::DCS,
    };
    let two = Options {
        model: Model::TwoCpes,
        default_requires: vec!["link"],
        ..Options::default()
    };
    let mut files = vec![config::vc_toml()];
    files.extend(DCS.iter().map(|dc| config::vc_toml_two_cpes(&two, dc)));
    for text in &files {
        let out = run("check-config", text);
        assert!(
            out.status.success(),
            "{}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let cpes: Vec<vc_agent::config::Config> = files[1..]
        .iter()
        .map(|text| vc_agent::config::parse(text).expect("parses"))
        .collect();
    for (c, dc) in cpes.iter().zip(DCS) {
        let terminated: Vec<u8> = c.terminated().map(|(id, _)| id.dc()).collect();
        assert_eq!(terminated, [dc.n]);
        assert_eq!(c.lan.default_requires.len(), 1);
    }
    let (first, second) = (&cpes[0], &cpes[1]);
    assert_ne!(first.agent.pin_dir, second.agent.pin_dir);
    assert_ne!(first.agent.state_dir, second.agent.state_dir);
    assert_ne!(first.charon.run_dir, second.charon.run_dir);
}

/// The lab's file with a second region passes, and the names the lab's checks expect of each
/// DC's tunnel (`vc_testkit::region::plan`) are the agent's own: its key, interface, reqid,
/// DC and prefixes.
#[test]
fn the_labs_second_region_passes_under_the_agents_names() {
    use vc_agent::{datapath::spec::tunnel_interface, ipsec::conn::reqid};
    use vc_testkit::region::{
        config::{self, Options},
        plan::ALL_DCS,
    };
    let text = config::vc_toml_with(&Options {
        regions: 2,
        ..Options::default()
    });
    let out = run("check-config", &text);
    assert!(
        out.status.success(),
        "{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = vc_agent::config::parse(&text).expect("parses");
    let terminated: Vec<_> = c.terminated().map(|(id, _)| id).collect();
    assert_eq!(terminated.len(), ALL_DCS.len());
    for (id, dc) in terminated.into_iter().zip(ALL_DCS) {
        let t = c.tunnel(id).expect("terminated");
        assert_eq!(id.key(), dc.key());
        assert_eq!(tunnel_interface(id), dc.interface());
        assert_eq!(reqid(id), dc.reqid());
        assert_eq!(id.dc(), dc.dc());
        assert_eq!(t.dc_ipsec_address, dc.ipsec);
        assert_eq!(c.dc_prefix(id).to_string(), dc.prefix);
        assert_eq!(c.cisco_prefix(id).to_string(), dc.cisco_prefix);
    }
}
