//! The datapath on Debian 12's kernel (6.1), in the test VM: every program passes that older
//! verifier, and programs attach through clsact and netlink, since 6.1 has no tcx (6.6).
use std::process::Command;

use aya::programs::{
    ProgramError, TcAttachType,
    tc::{NlOptions, TcAttachOptions, qdisc_add_clsact},
};
use vc_agent::datapath::{PROGRAMS, Program, XDP_PROGRAMS, load, object::classifier};
use vc_testkit::{NetNs, veth, vm};

/// `tc filter show dev <dev> <direction>` in the calling thread's namespace.
fn tc_filters(dev: &str, direction: &str) -> String {
    let out = Command::new("tc")
        .args(["filter", "show", "dev", dev, direction])
        .output()
        .expect("tc");
    assert!(out.status.success(), "tc filter show: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The verifier's log from a load error, if the verifier produced the error.
fn verifier_log(error: &anyhow::Error) -> Option<String> {
    error.chain().find_map(|cause| match cause.downcast_ref()? {
        ProgramError::LoadError { verifier_log, .. } => Some(format!("{verifier_log:?}")),
        _ => None,
    })
}

/// The verifier's last words: what it rejected and why.
fn tail(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[test]
fn every_program_passes_the_6_1_verifier() {
    if !vm::inside_or_boot("every_program_passes_the_6_1_verifier") {
        return;
    }
    // One program at a time, so that every rejection is reported with its verifier log.
    let mut rejected = Vec::new();
    for program in PROGRAMS.into_iter().chain(XDP_PROGRAMS) {
        if let Err(e) = load(&[program]) {
            let log = verifier_log(&e).unwrap_or_else(|| format!("{e:#}"));
            eprintln!("{} rejected: {e:#}\n", program.name());
            rejected.push(format!("{}:\n{}", program.name(), tail(&log, 12)));
        }
    }
    assert!(
        rejected.is_empty(),
        "the 6.1 verifier rejected (full logs above):\n{}",
        rejected.join("\n\n")
    );
}

#[test]
fn programs_attach_through_clsact_on_6_1() {
    if !vm::inside_or_boot("programs_attach_through_clsact_on_6_1") {
        return;
    }
    let wan = NetNs::new("vmbpf").expect("netns");
    let peer = NetNs::new("vmbpf").expect("netns");
    veth(&wan, "wan0", &peer, "wan1").expect("veth");
    wan.run_in(|| {
        let mut ebpf = load(&[Program::Noop, Program::WanGuard])
            .unwrap_or_else(|e| panic!("the 6.1 verifier: {e:?}"));
        qdisc_add_clsact("wan0").expect("clsact qdisc");

        let link = classifier(&mut ebpf, Program::Noop)
            .expect("program")
            .attach_with_options(
                "wan0",
                TcAttachType::Ingress,
                TcAttachOptions::Netlink(NlOptions::default()),
            )
            .expect("netlink attach at ingress");
        // Plain attach picks tcx from 6.6 on; on 6.1 it must fall back to netlink.
        classifier(&mut ebpf, Program::WanGuard)
            .expect("program")
            .attach("wan0", TcAttachType::Egress)
            .expect("attach at egress (netlink fallback)");

        let ingress = tc_filters("wan0", "ingress");
        assert!(
            ingress.contains("vc_noop") && ingress.contains("direct-action"),
            "ingress filters: {ingress}"
        );
        let egress = tc_filters("wan0", "egress");
        assert!(egress.contains("vc_wan_guard"), "egress filters: {egress}");

        classifier(&mut ebpf, Program::Noop)
            .expect("program")
            .detach(link)
            .expect("detach");
        let ingress = tc_filters("wan0", "ingress");
        assert!(
            !ingress.contains("vc_noop"),
            "still attached after detach: {ingress}"
        );
    })
    .expect("attaching in the namespace");
}
