//! The VM harness: the guest runs Debian's 6.1 kernel, autoloads modules, and can do what this
//! host's kernel cannot (ESP SAs, kernel GRE); failures and hangs inside reach the host.
use std::{
    fs,
    panic::{self, AssertUnwindSafe},
    time::Duration,
};

use vc_testkit::{
    NetNs, veth,
    vm::{self, VmDir, VmRun},
};

fn loaded(module: &str) -> bool {
    fs::read_to_string("/proc/modules")
        .expect("/proc/modules")
        .lines()
        .any(|l| l.split_whitespace().next() == Some(module))
}

#[test]
fn guest_runs_debian_6_1_and_autoloads_modules() {
    if !vm::inside_or_boot("guest_runs_debian_6_1_and_autoloads_modules") {
        return;
    }
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    let release = release.trim();
    println!("guest kernel {release}"); // output between libtest's lines must not matter
    assert!(release.starts_with("6.1."), "guest kernel {release}");
    assert_eq!(
        Some(release.to_string()),
        VmDir::locate().release(),
        "the guest must run the provisioned kernel"
    );

    // No modprobe here: the kernel asks the host's /sbin/modprobe for ip_gre, which works
    // only if the module tree and the switch_root are right.
    assert!(
        !loaded("ip_gre"),
        "ip_gre loaded before anything asked for it"
    );
    let a = NetNs::new("vmk").expect("netns");
    let b = NetNs::new("vmk").expect("netns");
    veth(&a, "vk0", &b, "vk1").expect("veth");
    a.ip(&["addr", "add", "198.51.100.1/24", "dev", "vk0"])
        .expect("addr");
    a.ip(&[
        "link",
        "add",
        "gre1",
        "type",
        "gre",
        "local",
        "198.51.100.1",
        "remote",
        "198.51.100.2",
        "ttl",
        "64",
    ])
    .expect("a kernel GRE device (autoloads ip_gre)");
    assert!(loaded("ip_gre"), "ip_gre was not autoloaded");
    assert!(loaded("veth"), "veth was not autoloaded");
}

// 20-byte AEAD keys: a 16-byte AES-128 key, then the 4-byte salt (RFC 4106).
const KEY_AB: &str = "0x0123456789abcdef0123456789abcdef01020304";
const KEY_BA: &str = "0xfedcba9876543210fedcba987654321004030201";

/// One side of a manually keyed GRE-over-ESP tunnel: tunnel-mode SAs both ways and policies
/// that protect only GRE between the two transport addresses (the Virtual Connect crypto ACL,
/// R7).
fn esp_side(ns: &NetNs, local: &str, remote: &str, keys: [(&str, &str); 2]) {
    // `ip -n`, not `ip netns exec`: that one costs a mount namespace per call, slow under TCG.
    let [(spi_out, key_out), (spi_in, key_in)] = keys;
    for (src, dst, spi, key) in [
        (local, remote, spi_out, key_out),
        (remote, local, spi_in, key_in),
    ] {
        ns.ip(&[
            "xfrm",
            "state",
            "add",
            "src",
            src,
            "dst",
            dst,
            "proto",
            "esp",
            "spi",
            spi,
            "reqid",
            "1",
            "mode",
            "tunnel",
            "aead",
            "rfc4106(gcm(aes))",
            key,
            "128",
        ])
        .expect("ESP SA");
    }
    for (src, dst, dir) in [(local, remote, "out"), (remote, local, "in")] {
        ns.ip(&[
            "xfrm",
            "policy",
            "add",
            "src",
            &format!("{src}/32"),
            "dst",
            &format!("{dst}/32"),
            "proto",
            "gre",
            "dir",
            dir,
            "tmpl",
            "src",
            src,
            "dst",
            dst,
            "proto",
            "esp",
            "reqid",
            "1",
            "mode",
            "tunnel",
        ])
        .expect("GRE-only XFRM policy");
    }
    ns.ip(&[
        "link", "add", "gre1", "type", "gre", "local", local, "remote", remote, "ttl", "64",
    ])
    .expect("GRE device");
    ns.ip(&["link", "set", "gre1", "up"]).expect("GRE up");
}

/// The packets carried by the namespace's SA whose source is `src` (its outbound SA), from
/// `ip -s xfrm state`'s lifetime counters.
fn sa_packets(ns: &NetNs, src: &str) -> u64 {
    let out = ns
        .ip(&["-s", "xfrm", "state", "list", "src", src])
        .expect("xfrm state");
    // "lifetime current:\n  1234(bytes), 5(packets)"
    out.split("lifetime current:")
        .nth(1)
        .and_then(|rest| rest.split("(bytes),").nth(1))
        .and_then(|rest| rest.split("(packets)").next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no packet counter in:\n{out}"))
}

#[test]
fn esp_sa_and_gre_only_policy_carry_a_ping() {
    if !vm::inside_or_boot("esp_sa_and_gre_only_policy_carry_a_ping") {
        return;
    }
    let (a_out, b_out) = ("198.51.100.1", "198.51.100.2");
    let a = NetNs::new("vme").expect("netns");
    let b = NetNs::new("vme").expect("netns");
    veth(&a, "ve0", &b, "ve1").expect("veth");
    a.ip(&["addr", "add", &format!("{a_out}/24"), "dev", "ve0"])
        .expect("addr");
    b.ip(&["addr", "add", &format!("{b_out}/24"), "dev", "ve1"])
        .expect("addr");
    esp_side(&a, a_out, b_out, [("0x1001", KEY_AB), ("0x2002", KEY_BA)]);
    esp_side(&b, b_out, a_out, [("0x2002", KEY_BA), ("0x1001", KEY_AB)]);
    a.ip(&["addr", "add", "192.0.2.1/30", "dev", "gre1"])
        .expect("addr");
    b.ip(&["addr", "add", "192.0.2.2/30", "dev", "gre1"])
        .expect("addr");

    a.sh("ping -c 3 -i 0.2 -W 5 192.0.2.2")
        .expect("ping over GRE protected by ESP");
    // The policy leaves the GRE packets no way around the SAs: the pings went through them.
    assert!(
        sa_packets(&a, a_out) >= 3,
        "a's outbound SA carried no pings"
    );
    assert!(
        sa_packets(&b, b_out) >= 3,
        "b's outbound SA carried no replies"
    );
}

/// The guest half of `guest_failure_fails_on_the_host`; ignored on the host, where it would
/// have nothing to do.
#[test]
#[ignore = "runs inside the VM, started by guest_failure_fails_on_the_host"]
fn fails_inside_the_vm() {
    assert!(!vm::inside(), "deliberate failure inside the VM");
}

#[test]
fn guest_failure_fails_on_the_host() {
    if vm::inside() || !vm::can_boot("guest_failure_fails_on_the_host") {
        return;
    }
    // (No quiet panic hook: hooks are process-wide and would swallow other tests' panics.)
    let message = panic_message(|| vm::boot_test("fails_inside_the_vm"))
        .expect("a test that fails in the VM must fail on the host");
    // A failed run keeps its results for a look; this one was expected.
    let kept = message
        .lines()
        .find_map(|l| l.strip_prefix("results: "))
        .unwrap_or_else(|| panic!("the panic must name the results directory:\n{message}"));
    assert!(
        std::path::Path::new(kept).join("output.log").is_file(),
        "{kept} must hold the guest's output"
    );
    fs::remove_dir_all(kept).expect("removing the failed run's results");
    for expected in [
        "fails_inside_the_vm failed in the VM",
        "rc=101",
        "deliberate failure inside the VM",
    ] {
        assert!(
            message.contains(expected),
            "the host's panic must say {expected:?}:\n{message}"
        );
    }
}

#[test]
fn a_name_not_the_callers_is_refused() {
    if vm::inside() {
        return;
    }
    // A copied test that kept its model's name would otherwise boot the model.
    let message = panic_message(|| {
        let _ = vm::inside_or_boot("esp_sa_and_gre_only_policy_carry_a_ping");
    })
    .expect("inside_or_boot must refuse another test's name");
    assert!(
        message.contains("called from the test a_name_not_the_callers_is_refused"),
        "{message}"
    );
}

/// The message `f` panics with, if it panics.
fn panic_message(f: impl FnOnce()) -> Option<String> {
    let payload = panic::catch_unwind(AssertUnwindSafe(f)).err()?;
    Some(
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(ToString::to_string))
            .unwrap_or_default(),
    )
}

#[test]
fn hung_guest_is_killed_at_the_timeout() {
    if vm::inside() || !vm::can_boot("hung_guest_is_killed_at_the_timeout") {
        return;
    }
    let timeout = Duration::from_secs(4);
    let outcome = VmRun::new("hang", &["sleep", "600"])
        .timeout(timeout)
        .run()
        .expect("VM run");
    assert!(outcome.timed_out, "{}", outcome.report());
    assert_eq!(outcome.rc, None);
    assert!(
        outcome.wall < timeout + Duration::from_secs(2),
        "{}",
        outcome.summary()
    );
    // QEMU's command line names the run's directory: no process may still have it.
    let dir = outcome.dir.path().to_string_lossy().into_owned();
    for entry in fs::read_dir("/proc").expect("/proc").filter_map(Result::ok) {
        if let Ok(cmdline) = fs::read(entry.path().join("cmdline")) {
            assert!(
                !String::from_utf8_lossy(&cmdline).contains(&dir),
                "QEMU (pid {}) outlived its timeout",
                entry.file_name().to_string_lossy()
            );
        }
    }
}

/// Under systemd: PID 1 is systemd, the test body runs as its unit, and journald takes what
/// a service logs, with its priority.
#[test]
fn systemd_runs_the_body_as_a_unit_beside_journald() {
    if !vm::inside_or_boot_under_systemd("systemd_runs_the_body_as_a_unit_beside_journald") {
        return;
    }
    let comm = fs::read_to_string("/proc/1/comm").expect("/proc/1/comm");
    assert_eq!(comm.trim(), "systemd");
    let sh = |script: &str| {
        let out = std::process::Command::new("sh")
            .args(["-c", script])
            .output()
            .expect("sh");
        assert!(out.status.success(), "{script}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let state = sh("systemctl show -P ActiveState vc-vm-run.service");
    assert_eq!(state.trim(), "activating", "the body is the unit's start");
    // No D-Bus in the guest: systemctl talks to PID 1 over its private socket.
    fs::write(
        "/run/systemd/system/vc-vm-probe.service",
        "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo vc-probe-line >&2'\n",
    )
    .expect("unit");
    sh("systemctl daemon-reload && systemctl start vc-vm-probe.service");
    let logged = sh("journalctl -u vc-vm-probe -o cat --no-pager");
    assert!(logged.contains("vc-probe-line"), "{logged}");
}
