//! IKE through strongSwan on this host's kernel (no ESP here: child SAs cannot be installed,
//! everything before that can be tested): the proposal grammar against charon, vc's own
//! charon and its supervision, IKE negotiation with a DC responder, and each failure named.
//! ESP, GRE and fail-closed traffic tests are in `ipsec_vm.rs`.
use std::time::{Duration, Instant};

use vc_agent::{
    config::{TunnelId, proposal},
    ipsec::{
        CharonState, Failure,
        charon::Supervised,
        conn, policy,
        vici::{Client, Message},
    },
};
use vc_fixtures::ike_lab::{self, Lab, Options, PSK};
use vc_testkit::{NetNs, charon::Charon, privileged};

fn ready(test: &str) -> bool {
    if !privileged(test) {
        return false;
    }
    vc_testkit::charon::require().unwrap_or_else(|e| panic!("{test}: {e}"));
    true
}

/// Every proposal keyword in several combinations, and each rule's counter-examples: vc's
/// verdict must be charon's (vc's two extra rules excepted, where charon must accept).
#[test]
fn proposal_grammar_agrees_with_charon() {
    if !ready("proposal_grammar_agrees_with_charon") {
        return;
    }
    let ns = NetNs::new("prop").expect("ns");
    let charon = Charon::start(&ns, "prop").expect("charon");
    let mut candidates: Vec<String> = vec![
        "default".into(),
        "Default".into(),
        "AES256-sha256-modp2048".into(),
        "aes256--sha256-modp2048".into(),
        "-aes256-sha256-modp2048".into(),
        "-".into(),
        String::new(),
        "aes256-sha256-modp2048-".into(),
        "aes256gcm16-aes256-sha256-modp2048".into(),
        "aes256-sha256_96-modp2048".into(),
        "aes256-prfsha256-modp2048".into(),
        "aes256gcm16-prfsha384-none".into(),
        "sha256-modp2048".into(),
    ];
    for (kw, _) in proposal::KEYWORDS {
        for combo in [
            kw.to_string(),
            format!("{kw}-sha256-modp2048"),
            format!("{kw}-prfsha256-ecp256"),
            format!("aes128-sha256-{kw}"),
            format!("aes128gcm16-prfsha256-{kw}"),
            format!("aes128gcm16-{kw}-ecp256"),
        ] {
            candidates.push(combo);
        }
    }
    let mut checked = 0;
    vc_fixtures::block_on(async {
        let mut vici = Client::connect(&charon.vici_path()).await.expect("vici");
        for p in &candidates {
            for protocol in [proposal::Protocol::Ike, proposal::Protocol::Esp] {
                let (ike, esp) = match protocol {
                    proposal::Protocol::Ike => (p.as_str(), "aes128gcm16"),
                    proposal::Protocol::Esp => ("aes128gcm16-prfsha256-ecp256", p.as_str()),
                };
                let conn = Message::new().section(
                    "probe",
                    Message::new()
                        .kv("version", "2")
                        .list("proposals", [ike])
                        .section("local", Message::new().kv("auth", "psk"))
                        .section("remote", Message::new().kv("auth", "psk"))
                        .section(
                            "children",
                            Message::new()
                                .section("c", Message::new().list("esp_proposals", [esp])),
                        ),
                );
                let response = vici.request("load-conn", conn).await.expect("load-conn");
                let charon_ok = response.yes("success");
                let ours = proposal::check(protocol, p);
                let vc_expects_charon_ok = match &ours {
                    Ok(()) => true,
                    Err(e) => !e.charon_refuses(),
                };
                assert_eq!(
                    charon_ok, vc_expects_charon_ok,
                    "{protocol} proposal {p:?}: charon says {response:?}, vc says {ours:?}"
                );
                checked += 1;
            }
        }
    });
    assert!(checked > 1_500, "{checked}");
}

/// vc's charon: private pid file and socket in its run dir, not killed with the agent, found
/// again by the next agent, stopped on request.
#[test]
fn own_charon_outlives_the_agent_and_is_found_again() {
    if !ready("own_charon_outlives_the_agent_and_is_found_again") {
        return;
    }
    let lab = Lab::new("sup", Options::default());
    let settings = lab.config("").charon;
    let run_dir = lab.run_dir.clone();
    let host_pid_file = std::fs::read_to_string("/run/charon.pid").ok();
    let (first, second, stopped) = lab
        .cpe
        .run_in(move || {
            vc_fixtures::block_on(async {
                let started = Instant::now();
                let sup = Supervised::ensure(&settings).await.expect("start charon");
                let first = sup.pid();
                let mut vici = Client::connect(&sup.socket()).await.expect("vici");
                let version = vici.version().await.expect("version");
                assert_eq!(version.str("daemon"), Some("charon"));
                eprintln!(
                    "charon {} up in {:?}",
                    version.str("version").unwrap_or("?"),
                    started.elapsed()
                );
                // The agent "dies": its handle goes, charon stays.
                drop(vici);
                drop(sup);
                tokio::time::sleep(Duration::from_millis(300)).await;
                let mut sup = Supervised::ensure(&settings).await.expect("find charon");
                let second = sup.pid();
                sup.stop(Duration::from_secs(10)).await;
                (
                    first,
                    second,
                    !std::path::Path::new(&format!("/proc/{second}")).exists(),
                )
            })
        })
        .expect("thread");
    assert_eq!(
        first, second,
        "the second agent must attach to the running charon"
    );
    assert!(stopped, "charon still runs after stop()");
    let pid_file = std::fs::read_to_string(run_dir.join("charon.pid")).unwrap_or_default();
    assert!(
        pid_file.is_empty() || pid_file.trim() == first.to_string(),
        "{pid_file}"
    );
    assert!(
        run_dir.join("charon.log").exists(),
        "charon logs into its run dir"
    );
    assert_eq!(
        std::fs::read_to_string("/run/charon.pid").ok(),
        host_pid_file,
        "vc's charon must not touch the system's /run/charon.pid"
    );
}

/// The happy path up to the kernel: block policies installed before charon, IKE SA up with
/// the configured proposal and identities, charon's GRE policies above vc's blocks, the
/// fixed reqid; no secret in any log.
#[test]
fn ike_sa_comes_up_with_a_dc_responder() {
    if !ready("ike_sa_comes_up_with_a_dc_responder") {
        return;
    }
    let lab = Lab::new("ike", Options::default());
    let dc = Charon::start(&lab.dc, "dc").expect("dc charon");
    dc.load(&[lab.dc_conn()]).expect("dc conn");
    let t0 = Instant::now();
    let vc = lab.start_vc(lab.config(""));
    let snap = vc.wait(Duration::from_secs(20), "IKE SA up", |s| {
        s.sas.tunnel(TunnelId::A).ike_up()
    });
    eprintln!("IKE SA up {:?} after start", t0.elapsed());
    let t = snap.sas.tunnel(TunnelId::A);
    let ike = t.ike.as_ref().expect("ike");
    assert_eq!(ike.proposal, "AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384");
    assert!(ike.initiator, "the CPE initiates (R8)");
    assert!(ike.remote.starts_with("198.51.100.2["), "{}", ike.remote);
    assert!(
        matches!(snap.charon, CharonState::Up { pid: Some(_), .. }),
        "{:?}",
        snap.charon
    );

    // Policies: vc's blocks (GRE out+in, ICMP unreachable out), charon's GRE policies with
    // reqid 1001, and charon's win (lower priority value).
    let xfrm = lab.cpe.ip(&["xfrm", "policy"]).expect("xfrm");
    let block = format!("priority {} ", policy::BLOCK_PRIORITY);
    assert_eq!(
        xfrm.matches(&block).count(),
        6,
        "GRE both ways and ICMP out, two marks each: {xfrm}"
    );
    assert!(xfrm.contains("action block"), "{xfrm}");
    let reqid = format!("reqid {}", conn::reqid(TunnelId::A));
    assert!(xfrm.contains(&reqid), "{xfrm}");
    for line in xfrm.lines().filter(|l| l.contains("priority")) {
        let prio: u32 = line
            .split("priority ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if !line.contains("socket") {
            assert!(prio <= policy::BLOCK_PRIORITY, "{line}");
        }
    }
    assert!(
        xfrm.contains("src 198.51.100.1/32 dst 198.51.100.2/32 proto gre"),
        "{xfrm}"
    );
    ipsec_status_as_json(&lab);

    // On this kernel the DC cannot install ESP: the child fails, named (no panic, no hang).
    let agent_log = vc.stop(true);
    for (what, log) in [
        ("agent", agent_log.as_str()),
        ("vc charon", &lab.vc_charon_log()),
        ("dc charon", &dc.log()),
    ] {
        assert!(!log.contains(PSK), "the PSK appears in the {what} log");
        assert!(
            !log.contains(ike_lab::BGP_PASSWORD),
            "the BGP password appears in the {what} log"
        );
    }
    assert!(
        lab.vc_charon_log().contains("IKE_SA vc-a[1] established"),
        "{}",
        lab.vc_charon_log()
    );
}

/// `vc-agent ipsec status --json` on the running charon: tunnel A's IKE SA up, as data.
fn ipsec_status_as_json(lab: &Lab) {
    let cfg = lab.dir.join("ipsec-status.toml");
    std::fs::write(&cfg, lab.config_text("")).expect("config");
    let out = lab
        .cpe
        .command(env!("CARGO_BIN_EXE_vc-agent"))
        .args(["ipsec", "status", "--json", "-c"])
        .arg(&cfg)
        .output()
        .expect("vc-agent ipsec status");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["charon"]["state"], "running", "{v}");
    let a = &v["tunnels"][0];
    assert_eq!(a["tunnel"], "a", "{v}");
    assert_eq!(a["ike"]["up"], true, "{v}");
    assert_eq!(
        a["ike"]["proposal"], "AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384",
        "{v}"
    );
}

/// Runs vc against a DC whose connection `tweak` alters, and returns the failure vc names.
fn failure_against(
    tag: &str,
    tweak: impl FnOnce(&mut vc_testkit::charon::Conn),
    dc_up: bool,
) -> (Failure, Duration) {
    let lab = Lab::new(tag, Options::default());
    let dc = if dc_up {
        let dc = Charon::start(&lab.dc, "dc").expect("dc charon");
        let mut conn = lab.dc_conn();
        tweak(&mut conn);
        dc.load(&[conn]).expect("dc conn");
        Some(dc)
    } else {
        None
    };
    let t0 = Instant::now();
    let vc = lab.start_vc(lab.config(""));
    let snap = vc.wait(Duration::from_secs(30), "a named failure", |s| {
        s.sas.tunnel(TunnelId::A).last_error.is_some()
    });
    let elapsed = t0.elapsed();
    let e = snap
        .sas
        .tunnel(TunnelId::A)
        .last_error
        .clone()
        .expect("error");
    eprintln!(
        "{tag}: {} after {elapsed:?} (charon: {:?})",
        e.failure, e.line
    );
    let logs = vc.stop(true);
    assert!(
        logs.contains(e.failure.name()),
        "the agent logs the failure by name:\n{logs}"
    );
    assert!(!logs.contains(PSK));
    drop(dc);
    (e.failure, elapsed)
}

#[test]
fn ike_proposal_mismatch_is_named() {
    if !ready("ike_proposal_mismatch_is_named") {
        return;
    }
    let (f, _) = failure_against(
        "npc",
        |c| c.proposals = "aes128-sha256-modp2048".into(),
        true,
    );
    assert_eq!(f, Failure::NoProposalChosen { ike: true });
}

#[test]
fn wrong_psk_is_named() {
    if !ready("wrong_psk_is_named") {
        return;
    }
    let (f, _) = failure_against("psk", |c| c.psk = "not-the-same-psk".into(), true);
    assert_eq!(f, Failure::AuthenticationFailed);
}

#[test]
fn selector_mismatch_is_named() {
    if !ready("selector_mismatch_is_named") {
        return;
    }
    // The DC's crypto ACL says "IP" instead of "GRE" (R7: that does not work with Cisco).
    let (f, _) = failure_against("tsu", |c| c.remote_ts = "198.51.100.1/32[udp]".into(), true);
    assert_eq!(f, Failure::TsUnacceptable);
}

#[test]
fn unreachable_peer_is_named() {
    if !ready("unreachable_peer_is_named") {
        return;
    }
    let (f, elapsed) = failure_against("unr", |_| {}, false);
    assert_eq!(f, Failure::PeerUnreachable { port: Some(500) });
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
}

/// Attach mode: vc uses a running (system) charon through its VICI socket, adds its own
/// connection next to the ones already there, and the IKE SA comes up.
#[test]
fn attaches_to_a_running_charon_and_leaves_its_connections_alone() {
    if !ready("attaches_to_a_running_charon_and_leaves_its_connections_alone") {
        return;
    }
    let lab = Lab::new("att", Options::default());
    let dc = Charon::start(&lab.dc, "dc").expect("dc charon");
    dc.load(&[lab.dc_conn()]).expect("dc conn");
    let system = Charon::start(&lab.cpe, "system").expect("system charon");
    let office =
        vc_testkit::charon::Conn::gre_psk("office", "198.51.100.1", "203.0.113.99", "other");
    system.load(&[office]).expect("foreign conn");
    let socket = system.vici_path();
    let text = lab.config_text("").replace(
        "[charon]\n",
        &format!(
            "[charon]\nmode = \"attach\"\nsocket = \"{}\"\n",
            socket.display()
        ),
    );
    let vc = lab.start_vc(config_from(&lab, &text));
    let snap = vc.wait(Duration::from_secs(20), "IKE SA up", |s| {
        s.sas.tunnel(TunnelId::A).ike_up()
    });
    assert!(
        matches!(snap.charon, CharonState::Up { pid: None, .. }),
        "{:?}",
        snap.charon
    );
    drop(vc.stop(true));
    let conns = system.swanctl(&["--list-conns"]).expect("list-conns");
    assert!(
        conns.contains("office:") && conns.contains("vc-a:"),
        "{conns}"
    );
    assert!(
        system.is_running_now(),
        "stop(true) must not stop a charon vc does not own"
    );
}

/// external-ipsec mode: no charon, no block policies (stale ones removed).
#[test]
fn external_ipsec_mode_starts_no_charon_and_removes_blocks() {
    if !ready("external_ipsec_mode_starts_no_charon_and_removes_blocks") {
        return;
    }
    let lab = Lab::new("ext", Options::default());
    let ipsec = lab.start_vc(lab.config(""));
    ipsec.wait(Duration::from_secs(20), "charon up", |s| {
        matches!(s.charon, CharonState::Up { .. })
    });
    drop(ipsec.stop(true));
    assert!(
        lab.cpe
            .ip(&["xfrm", "policy"])
            .expect("xfrm")
            .contains("action block")
    );
    let text = lab.config_text("").replace(
        "region = \"TEST\"",
        "region = \"TEST\"\nmode = \"external-ipsec\"",
    );
    let vc = lab.start_vc(config_from(&lab, &text));
    assert_eq!(vc.snapshot().charon, CharonState::NotUsed);
    drop(vc.stop(false));
    let policies = lab.cpe.ip(&["xfrm", "policy"]).expect("xfrm");
    assert!(!policies.contains("action block"), "{policies}");
    assert!(
        !lab.run_dir.join("charon.pid").exists()
            || std::fs::read_to_string(lab.run_dir.join("charon.pid"))
                .unwrap_or_default()
                .is_empty()
    );
}

/// A config from text, through the real loader.
fn config_from(lab: &Lab, text: &str) -> vc_agent::config::Config {
    let path = lab.dir.join("custom.toml");
    std::fs::write(&path, text).expect("write");
    vc_agent::config::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// charon cannot start: `Ipsec::start` says why, and GRE is blocked all the same.
#[test]
fn a_charon_that_cannot_start_is_reported_and_gre_stays_blocked() {
    if !ready("a_charon_that_cannot_start_is_reported_and_gre_stays_blocked") {
        return;
    }
    let lab = Lab::new("nost", Options::default());
    let text = lab
        .config_text("")
        .replace("[charon]\n", "[charon]\nbinary = \"/nonexistent/charon\"\n");
    let config = config_from(&lab, &text);
    let err = lab
        .cpe
        .run_in(move || {
            vc_fixtures::block_on(vc_agent::ipsec::Ipsec::start(config))
                .err()
                .map(|e| e.to_string())
        })
        .expect("thread")
        .expect("start must fail");
    assert!(
        err.starts_with("cannot start /nonexistent/charon: No such file"),
        "{err}"
    );
    let policies = lab.cpe.ip(&["xfrm", "policy"]).expect("xfrm");
    assert_eq!(
        policies.matches("action block").count(),
        6,
        "GRE both ways and ICMP out, two marks each: {policies}"
    );
}

/// charon killed (SIGKILL) on this host: the controller notices, restarts it, loads the
/// tunnel again and the IKE SA comes back.
#[test]
fn a_killed_charon_is_restarted_and_the_tunnel_reloaded() {
    if !ready("a_killed_charon_is_restarted_and_the_tunnel_reloaded") {
        return;
    }
    let lab = Lab::new("kill", Options::default());
    let dc = Charon::start(&lab.dc, "dc").expect("dc charon");
    dc.load(&[lab.dc_conn()]).expect("dc conn");
    let vc = lab.start_vc(lab.config(""));
    let snap = vc.wait(Duration::from_secs(20), "IKE SA up", |s| {
        s.sas.tunnel(TunnelId::A).ike_up()
    });
    let CharonState::Up { pid: Some(pid), .. } = snap.charon else {
        panic!("{:?}", snap.charon)
    };
    let mut notices = vc.ipsec().notices();
    let t = Instant::now();
    lab.cpe.sh(&format!("kill -KILL {pid}")).expect("kill");
    let snap = vc.wait(Duration::from_secs(20), "a new charon and IKE SA", |s| {
        matches!(s.charon, CharonState::Up { pid: Some(p), .. } if p != pid)
            && s.sas.tunnel(TunnelId::A).ike_up()
    });
    eprintln!(
        "MEASURE host: charon SIGKILLed, new charon with IKE SA after {:?}",
        t.elapsed()
    );
    let mut seen = Vec::new();
    while let Ok(n) = notices.try_recv() {
        seen.push(n);
    }
    assert!(
        seen.iter()
            .any(|n| matches!(n, vc_agent::ipsec::Notice::CharonDown { .. })),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|n| matches!(n, vc_agent::ipsec::Notice::CharonUp { .. })),
        "{seen:?}"
    );
    assert!(snap.sas.tunnel(TunnelId::A).ike_ups >= 1);
    drop(vc.stop(true));
}

/// `swanctl ARGS` against vc's own charon, through its VICI socket in the run dir, as an
/// operator would run it.
fn swanctl_on_vcs_charon(lab: &Lab, args: &[&str]) -> String {
    let uri = format!("unix://{}", lab.run_dir.join("charon.vici").display());
    let out = std::process::Command::new("swanctl")
        .args(args)
        .args(["--uri", &uri])
        .env("STRONGSWAN_CONF", lab.run_dir.join("strongswan.conf"))
        .output()
        .expect("swanctl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "swanctl {args:?}: {text}");
    text
}

/// An operator's `swanctl --load-all` with a config that lacks vc's connection unloads it
/// (and its PSK) from vc's charon. That leaves the IKE SA up, but nothing to bring it back
/// once it ends: here it is ended at once. At its next refresh the controller loads the
/// connection and the PSK again and initiates, and a new IKE SA comes up.
#[test]
fn connections_unloaded_behind_vcs_back_are_loaded_again() {
    if !ready("connections_unloaded_behind_vcs_back_are_loaded_again") {
        return;
    }
    let lab = Lab::new("unl", Options::default());
    let dc = Charon::start(&lab.dc, "dc").expect("dc charon");
    dc.load(&[lab.dc_conn()]).expect("dc conn");
    let vc = lab.start_vc(lab.config(""));
    let before = vc.wait(Duration::from_secs(20), "IKE SA up", |s| {
        s.sas.tunnel(TunnelId::A).ike_up()
    });
    let ups = before.sas.tunnel(TunnelId::A).ike_ups;
    let empty = lab.dir.join("empty-swanctl.conf");
    std::fs::write(&empty, "connections {\n}\nsecrets {\n}\n").expect("empty config");
    let t = Instant::now();
    let said = swanctl_on_vcs_charon(
        &lab,
        &["--load-all", "--file", &empty.display().to_string()],
    );
    swanctl_on_vcs_charon(&lab, &["--terminate", "--ike", "vc-a", "--timeout", "5"]);
    let conns = swanctl_on_vcs_charon(&lab, &["--list-conns"]);
    assert!(!conns.contains("vc-a:"), "not unloaded: {said}\n{conns}");
    let reloaded = ike_lab::wait(Duration::from_secs(20), "vc-a loaded again", || {
        swanctl_on_vcs_charon(&lab, &["--list-conns"])
            .contains("vc-a:")
            .then(|| t.elapsed())
    });
    let snap = vc.wait(Duration::from_secs(30), "a new IKE SA", |s| {
        let a = s.sas.tunnel(TunnelId::A);
        a.ike_up() && a.ike_ups > ups
    });
    let up = t.elapsed();
    eprintln!(
        "MEASURE host: vc's connection unloaded behind its back (and its IKE SA ended): \
         loaded again after {reloaded:?}, a new IKE SA up after {up:?}"
    );
    let keys = vc.rt.block_on(async {
        let mut vici = Client::connect(&lab.run_dir.join("charon.vici"))
            .await
            .expect("vici");
        let shared = vici
            .call("get-shared", Message::new())
            .await
            .expect("get-shared");
        shared
            .strs("keys")
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    });
    assert!(
        keys.contains(&"vc-a".to_string()),
        "the PSK is back too: {keys:?}"
    );
    assert!(snap.sas.tunnel(TunnelId::A).ike_up());
    let logs = vc.stop(true);
    assert!(logs.contains("unloaded behind vc's back"), "{logs}");
    assert!(!logs.contains(PSK), "the PSK in the agent's log");
}

/// charon stopped (SIGSTOP) answers nothing: the controller says it is unresponsive within
/// a refresh and a VICI time limit, keeps the SA table it last saw, and once charon answers
/// again (SIGCONT) it is up again.
#[test]
fn a_wedged_charon_is_reported_unresponsive_and_recovers() {
    if !ready("a_wedged_charon_is_reported_unresponsive_and_recovers") {
        return;
    }
    let lab = Lab::new("wdg", Options::default());
    let dc = Charon::start(&lab.dc, "dc").expect("dc charon");
    dc.load(&[lab.dc_conn()]).expect("dc conn");
    let vc = lab.start_vc(lab.config(""));
    let snap = vc.wait(Duration::from_secs(20), "IKE SA up", |s| {
        s.sas.tunnel(TunnelId::A).ike_up()
    });
    let CharonState::Up { pid: Some(pid), .. } = snap.charon else {
        panic!("{:?}", snap.charon)
    };
    let t = Instant::now();
    let stopped = ike_lab::Stopped::new(pid);
    let wedged = vc.wait(Duration::from_secs(30), "charon unresponsive", |s| {
        matches!(s.charon, CharonState::Unresponsive { .. })
    });
    eprintln!(
        "MEASURE host: charon SIGSTOPped, reported unresponsive after {:?}",
        t.elapsed()
    );
    assert!(
        wedged.sas.tunnel(TunnelId::A).ike_up(),
        "the last SA table is kept: {wedged:#?}"
    );
    let status = vc_agent::status::CharonStatus::from(&wedged.charon);
    assert!(
        status.to_string().starts_with("NOT ANSWERING for "),
        "{status}"
    );
    drop(stopped);
    let t = Instant::now();
    vc.wait(
        Duration::from_mins(1),
        "charon up again",
        |s| matches!(s.charon, CharonState::Up { pid: Some(p), .. } if p == pid),
    );
    eprintln!(
        "MEASURE host: charon resumed, up again after {:?}",
        t.elapsed()
    );
    let logs = vc.stop(true);
    assert!(logs.contains("charon does not answer"), "{logs}");
}
