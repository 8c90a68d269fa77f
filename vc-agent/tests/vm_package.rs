//! The Debian package on a CPE: the .deb that `cargo xtask dist` built (`VC_DEB`, set by
//! `cargo xtask test`) installed with `dpkg -i` in the test VM, systemd as PID 1, and the CPE
//! of the lab's region (`vc_testkit::region`) run by the installed unit from the installed
//! files: `/usr/sbin/vc-agent`, `/etc/vc/vc.toml`, `vc-agent.service` with every restriction
//! it ships (a drop-in only puts it in the CPE's namespace). One VM boot: install, verify the
//! unit, start (READY=1), both tunnels up, the journal with priorities, `systemctl reload`
//! (applied, and refused), a restart that keeps charon, `vc-agent stop`, purge, remove and
//! purge the package.
use std::{
    path::Path,
    process::{Command, Output},
    time::{Duration, Instant},
};

use vc_testkit::{region::Region, vm, wait_for};

const AGENT: &str = "/usr/sbin/vc-agent";
const UNIT: &str = "vc-agent.service";

fn sh(script: &str) -> Output {
    Command::new("sh")
        .args(["-c", script])
        .output()
        .unwrap_or_else(|e| panic!("{script}: {e}"))
}

/// `script`'s stdout; panics with its output unless it succeeded.
fn ok(script: &str) -> String {
    let out = sh(script);
    assert!(
        out.status.success(),
        "{script}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn unit_property(name: &str) -> String {
    ok(&format!("systemctl show -P {name} {UNIT}"))
        .trim()
        .to_string()
}

/// The package to test, or `None` (skip, with a reason) when none was built.
fn package() -> Option<String> {
    let deb = std::env::var("VC_DEB")
        .ok()
        .filter(|d| Path::new(d).is_file());
    if deb.is_none() {
        assert!(
            std::env::var_os("VC_REQUIRE_PRIV").is_none(),
            "VC_DEB names no package: run `cargo xtask test` (it builds one with `cargo xtask \
             dist`)"
        );
        eprintln!("SKIP the_package_runs_the_lab_cpe_under_systemd: VC_DEB names no package");
    }
    deb
}

#[test]
fn the_package_runs_the_lab_cpe_under_systemd() {
    let Some(deb) = package() else { return };
    if !vm::inside_or_boot_under_systemd("the_package_runs_the_lab_cpe_under_systemd") {
        return;
    }
    install(&deb);
    let mut region = Region::build(Path::new(AGENT)).expect("the region");
    // The lab's CPE is a namespace: the unit joins it. The lab's pins live under /run (a
    // namespace's `ip netns exec` remounts /sys), which ProtectSystem=strict would make
    // read-only. Nothing else of the shipped unit changes.
    std::fs::create_dir_all("/run/systemd/system/vc-agent.service.d").expect("drop-in dir");
    std::fs::write(
        "/run/systemd/system/vc-agent.service.d/lab.conf",
        format!(
            "[Service]\nNetworkNamespacePath=/run/netns/cpe\nReadWritePaths={}\n",
            vc_testkit::region::config::BPF_MOUNT
        ),
    )
    .expect("drop-in");
    ok("systemctl daemon-reload");

    let t = Instant::now();
    // Type=notify: `start` returns once the agent said READY=1 (or failed).
    let started = sh(&format!("systemctl start {UNIT}"));
    assert!(started.status.success(), "start failed:\n{}", journal());
    eprintln!("MEASURE systemctl start (READY=1) {:?}", t.elapsed());
    let status_text = unit_property("StatusText");
    assert!(status_text.starts_with("up: region LAB"), "{status_text}");
    region
        .start_dc_peers(Duration::from_mins(1))
        .unwrap_or_else(|e| panic!("{e:#}\n{}\n{}", region.logs(40), journal()));
    let (up, list) = region.wait_up(Duration::from_mins(1), |_, _, _| {});
    assert!(up, "not up:\n{list}\n{}\n{}", region.logs(40), journal());

    // The status line follows: what `systemctl status vc-agent` shows.
    wait_for(Duration::from_secs(15), "the status line", || {
        let line = unit_property("StatusText");
        (line.contains("tunnel A (DC1) up, BGP Established, 2/2 prefixes")
            && line.contains("tunnel B (DC2) up, BGP Established, 2/2 prefixes"))
        .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e:#}: {}", unit_property("StatusText")));
    journal_has_priorities();
    reload_under_systemd();
    restart_keeps_charon(&region);

    // A stop for good, as the package's removal starts it: Cease, vc's routes withdrawn, a
    // clean exit that systemd does not restart.
    let stopped = region
        .agent_command(&["stop", "-c", "/etc/vc/vc.toml"])
        .output()
        .expect("vc-agent stop");
    assert!(
        stopped.status.success(),
        "vc-agent stop: {}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    wait_for(Duration::from_secs(10), "the unit inactive", || {
        (unit_property("ActiveState") == "inactive").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", journal()));
    assert_eq!(
        region
            .cpe
            .sh("ip route show proto 201")
            .expect("routes")
            .trim(),
        "",
        "vc's routes withdrawn"
    );
    for n in [1, 2] {
        assert!(
            region.dc(n).received().is_empty(),
            "DC{n} dropped vc's route"
        );
    }
    ok(&format!("systemctl stop {UNIT}"));
    assert!(journal().contains("agent stopped"), "{}", journal());
    purge(&region);
    remove_and_purge_the_package();
    drop(region);
}

/// `dpkg -i` on the guest's writable overlay; the files where they belong, the unit as
/// systemd-analyze judges it.
fn install(deb: &str) {
    ok(&format!("dpkg -i {deb}"));
    let version = ok(&format!("{AGENT} --version"));
    assert!(
        version.contains("(commit ") && !version.contains("BPF object none"),
        "{version}"
    );
    let modes = ok("stat -c '%a %n' /etc/vc/vc.toml /etc/vc/secrets.env /usr/sbin/vc-agent");
    assert!(modes.contains("640 /etc/vc/vc.toml"), "{modes}");
    assert!(modes.contains("600 /etc/vc/secrets.env"), "{modes}");
    for file in [
        "/usr/lib/systemd/system/vc-agent.service",
        "/usr/share/man/man8/vc-agent.8.gz",
        "/usr/share/bash-completion/completions/vc-agent",
        "/etc/iproute2/rt_protos.d/vc.conf",
    ] {
        assert!(Path::new(file).is_file(), "{file} not installed");
    }
    // man-db need not be installed: the page's presence is checked above.
    let verify = sh("systemd-analyze verify --man=no /usr/lib/systemd/system/vc-agent.service");
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    // Installed, not started: the config is a template until an admin fills it in.
    assert_eq!(unit_property("ActiveState"), "inactive");
    // The shipped config names its secrets by environment variables an admin's shell lacks:
    // the read-only commands do not care.
    let status = sh(&format!("{AGENT} status"));
    let said = String::from_utf8_lossy(&status.stderr);
    assert_eq!(status.status.code(), Some(2), "{said}");
    assert!(said.contains("no agent answers"), "{said}");
}

/// The agent's journal: `agent up` at priority info (6), from vc-agent.
fn journal_has_priorities() {
    let json = ok(&format!("journalctl -u {UNIT} -o json --no-pager"));
    let up = json
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| {
            e["MESSAGE"]
                .as_str()
                .is_some_and(|m| m.contains("agent up"))
        })
        .unwrap_or_else(|| panic!("no `agent up` in the journal:\n{json}"));
    assert_eq!(up["PRIORITY"], "6", "{up}");
    assert_eq!(up["SYSLOG_IDENTIFIER"], "vc-agent", "{up}");
}

/// `ExecReload`: `systemctl reload` runs `vc-agent reload` inside the unit's restrictions. The
/// same config applies nothing; an invalid one fails the reload, named in the journal, and the
/// agent runs on as it was.
fn reload_under_systemd() {
    const CONFIG: &str = "/etc/vc/vc.toml";
    let agent = unit_property("MainPID");
    ok(&format!("systemctl reload {UNIT}"));
    wait_for(Duration::from_secs(5), "the reload in the journal", || {
        journal().contains("reload: no change").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", journal()));
    let good = std::fs::read_to_string(CONFIG).expect("the config");
    let bad = good.replace("cpe_asn = ", "cpe_asn = 1 # was ");
    assert_ne!(bad, good, "the config names cpe_asn");
    std::fs::write(CONFIG, &bad).expect("an invalid config");
    let refused = sh(&format!("systemctl reload {UNIT}"));
    std::fs::write(CONFIG, &good).expect("the config back");
    assert!(!refused.status.success(), "an invalid config is refused");
    let log = journal();
    assert!(
        log.contains("the new config is refused, the running one kept"),
        "{log}"
    );
    assert!(
        log.contains("tunnel.a.cpe_asn"),
        "the fault is named: {log}"
    );
    assert_eq!(unit_property("MainPID"), agent, "the same agent");
    assert_eq!(unit_property("ActiveState"), "active");
}

/// KillMode=process: a restarted agent finds vc's charon still running and adopts it and the
/// datapath; the tunnels stay up.
fn restart_keeps_charon(region: &Region) {
    let charon = region.cpe_charon_pid().expect("vc's charon pid");
    let agent = unit_property("MainPID");
    ok(&format!("systemctl restart {UNIT}"));
    assert_ne!(unit_property("MainPID"), agent, "a new agent");
    assert_eq!(region.cpe_charon_pid(), Some(charon), "charon restarted");
    assert!(Path::new(&format!("/proc/{charon}")).exists());
    let (up, list) = region.wait_up(Duration::from_secs(40), |_, _, _| {});
    assert!(up, "not up after a restart:\n{list}\n{}", journal());
}

/// `vc-agent purge` (in the CPE's namespace, where the datapath is): nothing of vc is left.
fn purge(region: &Region) {
    let charon = region.cpe_charon_pid().expect("vc's charon pid");
    let out = region
        .agent_command(&["purge"])
        .output()
        .expect("vc-agent purge");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && !said.contains("FAILED"), "{said}");
    let cpe = &region.cpe;
    assert!(!cpe.sh("ip -o link").expect("links").contains("vc-dc"));
    assert_eq!(
        cpe.sh("ip route show proto 201").expect("routes").trim(),
        ""
    );
    assert_eq!(cpe.sh("ip xfrm policy").expect("policies").trim(), "");
    assert!(!Path::new(&format!("/proc/{charon}")).exists(), "charon");
    assert!(!Path::new("/run/vc").exists(), "the state directory");
    wait_for(Duration::from_secs(5), "no program on the WAN", || {
        let tc = cpe.sh("tc filter show dev wan0 egress").unwrap_or_default();
        (!tc.contains("vc_")).then_some(())
    })
    .expect("the WAN guard detached");
}

/// `dpkg -r` keeps the conffiles, `dpkg -P` takes them too.
fn remove_and_purge_the_package() {
    ok("dpkg -r vc-agent");
    assert!(!Path::new(AGENT).exists());
    assert!(Path::new("/etc/vc/vc.toml").exists(), "conffiles stay");
    ok("dpkg -P vc-agent");
    assert!(!Path::new("/etc/vc/vc.toml").exists(), "conffiles purged");
}

fn journal() -> String {
    let out = sh(&format!(
        "journalctl -u {UNIT} -o short-monotonic --no-pager"
    ));
    format!(
        "---- journal of {UNIT} ----\n{}",
        String::from_utf8_lossy(&out.stdout)
    )
}
