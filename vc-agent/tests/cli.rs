//! The CLI's habits, as an admin meets them, without privileges: the read-only commands
//! never read a secret (the shipped example's `{ env = ... }` secrets are unset here), their
//! `--json`, and their exit statuses when no agent runs (2 for `status` and `diagnose`). The
//! exit statuses with a running agent are checked in `tests/diagnose` and `tests/agent`.
use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

const EXAMPLE: &str = include_str!("../../vc.example.toml");
const SECRET_VARS: [&str; 4] = [
    "VC_PSK_A",
    "VC_PSK_B",
    "VC_BGP_PASSWORD_A",
    "VC_BGP_PASSWORD_B",
];

/// `vc-agent ARGS` with the example's secret variables unset.
fn vc_agent(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vc-agent"));
    cmd.args(args);
    for var in SECRET_VARS {
        cmd.env_remove(var);
    }
    cmd.output().expect("vc-agent")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The example, with its state directory (where the agent's socket is) in a fresh
/// directory no agent answers in.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("vc-cli-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let text = format!(
            "{EXAMPLE}\n[agent]\nstate_dir = \"{}\"\n",
            dir.join("state").display()
        );
        std::fs::write(dir.join("vc.toml"), text).expect("config");
        Scratch(dir)
    }

    fn config(&self) -> String {
        self.0.join("vc.toml").display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn example_path() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../vc.example.toml")
        .display()
        .to_string()
}

fn assert_no_secret_fault(out: &Output) {
    let text = text(out);
    assert!(
        !text.contains("environment variable") && !text.contains("cannot be resolved"),
        "a read-only command read a secret:\n{text}"
    );
}

/// The brief's case as is: `vc-agent status -c vc.example.toml` in a shell without the
/// secrets reports the agent, or that it does not run; never a secret.
#[test]
fn status_of_the_example_reads_no_secret() {
    let out = vc_agent(&["status", "-c", &example_path()]);
    assert_no_secret_fault(&out);
    match out.status.code() {
        Some(0) => assert!(text(&out).contains("region EMEA"), "{}", text(&out)),
        Some(2) => assert!(text(&out).contains("no agent answers"), "{}", text(&out)),
        other => panic!("exit status {other:?}:\n{}", text(&out)),
    }
}

#[test]
fn status_and_diagnose_without_an_agent_exit_2() {
    let scratch = Scratch::new("no-agent");
    let config = scratch.config();
    for args in [
        vec!["status"],
        vec!["status", "--json", "--tunnel", "a"],
        vec!["diagnose"],
        vec!["diagnose", "--json", "--tunnel", "b"],
    ] {
        let mut args = args;
        args.extend(["-c", &config]);
        let out = vc_agent(&args);
        assert_no_secret_fault(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}:\n{}", text(&out));
        assert!(text(&out).contains("no agent answers"), "{}", text(&out));
    }
    let missing = vc_agent(&["diagnose", "-c", "/nonexistent/vc.toml"]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
}

/// `ipsec status` and `datapath show` find no charon and no datapath: an error about that,
/// not about a secret.
#[test]
fn ipsec_status_and_datapath_show_read_no_secret() {
    let scratch = Scratch::new("readers");
    let config = scratch.config();
    for args in [
        ["ipsec", "status", "--json"],
        ["datapath", "show", "--json"],
    ] {
        let mut args = args.to_vec();
        args.extend(["-c", &config]);
        let out = vc_agent(&args);
        assert_no_secret_fault(&out);
    }
}

#[test]
fn export_config_as_json_reads_and_shows_no_secret() {
    let out = vc_agent(&["export-config", "--json", "-c", &example_path()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["region"], "EMEA");
    assert_eq!(v["tunnel"]["a"]["cisco_asn"], 64600);
    assert!(v["tunnel"]["a"].get("ike_psk").is_none(), "{v}");
    assert!(v["tunnel"]["b"].get("bgp_password").is_none(), "{v}");
    let toml = vc_agent(&["export-config", "-c", &example_path()]);
    assert_eq!(toml.status.code(), Some(0), "{}", text(&toml));
}

/// `check-config` does resolve secrets: unset, each is a fault (exit 1); in JSON too.
#[test]
fn check_config_as_json() {
    let out = vc_agent(&["check-config", "--json", "-c", &example_path()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["ok"], false);
    let faults = v["faults"].as_array().expect("faults");
    assert_eq!(faults.len(), 4, "{v}");
    assert!(
        faults
            .iter()
            .all(|f| f.as_str().is_some_and(|f| f.contains("is not set"))),
        "{v}"
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vc-agent"));
    cmd.args(["check-config", "--json", "-c", &example_path()]);
    for var in SECRET_VARS {
        cmd.env(var, "a-secret-of-the-test");
    }
    let out = cmd.output().expect("vc-agent");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["ok"], true);
    assert_eq!(v["tunnels"], serde_json::json!(["a", "b"]));
}

/// `--version` names the commit and the embedded BPF object.
#[test]
fn version_names_commit_and_object() {
    let out = vc_agent(&["--version"]);
    let version = String::from_utf8_lossy(&out.stdout);
    let (head, rest) = version
        .trim()
        .split_once(" (commit ")
        .unwrap_or_else(|| panic!("{version}"));
    assert_eq!(head, format!("vc-agent {}", env!("CARGO_PKG_VERSION")));
    assert!(rest.contains(", BPF object "), "{version}");
}

/// The package's man page and completions come from the CLI itself.
#[test]
fn man_page_and_completions() {
    let man = vc_agent(&["man"]);
    let man = String::from_utf8_lossy(&man.stdout);
    assert!(
        man.starts_with(".ie") || man.contains(".TH vc-agent"),
        "{man}"
    );
    for command in ["diagnose", "purge", "check\\-config"] {
        assert!(man.contains(command), "{command} not in the man page");
    }
    for shell in ["bash", "zsh", "fish"] {
        let out = vc_agent(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0));
        let script = String::from_utf8_lossy(&out.stdout);
        for command in ["diagnose", "purge", "tunnel"] {
            assert!(
                script.contains(command),
                "{shell}: no {command} in {script}"
            );
        }
    }
}

/// One definition of the BPF build: the object this vc-agent embeds (named by `--version`)
/// is byte for byte the one `cargo xtask build-ebpf` leaves in target/bpf. Skips for a build
/// without the object (`AYA_BUILD_SKIP`), unless `VC_REQUIRE_PRIV` (CI) forbids it.
#[test]
fn embedded_object_is_the_one_xtask_builds() {
    let out = vc_agent(&["--version"]);
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (_, named) = version
        .split_once("BPF object ")
        .unwrap_or_else(|| panic!("{version}"));
    let named = named.trim_end_matches(')');
    if named == "none" {
        assert!(
            std::env::var_os("VC_REQUIRE_PRIV").is_none(),
            "this vc-agent embeds no BPF object: {version}"
        );
        eprintln!("SKIP: vc-agent was built without its BPF object");
        return;
    }
    let path = vc_ebpf_build::object_path();
    let object = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        named,
        vc_ebpf_build::describe(&object),
        "{version} vs {}",
        path.display()
    );
}
