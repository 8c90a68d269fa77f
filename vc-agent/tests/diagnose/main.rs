//! R24 and R25 on a real agent: `vc-agent run` on this host (external-ipsec mode, BIRD as the
//! DCs' BGP, vc datapaths as their GRE ends, as in `tests/agent`), then `vc-agent diagnose`
//! against a healthy CPE and against real faults, each found at Cisco's step with its cause;
//! the metrics endpoint scraped over TCP. The IPsec steps need charon: a DC responder with
//! another PSK fails IKE before any SA is installed, so that works without kernel ESP.
use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    time::{Duration, Instant},
};

use ipnet::Ipv4Net;
use vc_agent::{
    diagnose::{Cause, Diagnosis, Step, Verdict},
    status::{AgentStatus, Failure, TunnelId},
};
use vc_fixtures::{
    agent_lab::{Agent, DC1_AS, DC2_AS, bird, config},
    gre_lab::Topology,
    ike_lab,
};
use vc_testkit::{
    NetNs,
    metrics::{Exposition, parse},
    privileged, wait_for,
};

const AGENT: Agent = Agent(env!("CARGO_BIN_EXE_vc-agent"));
const METRICS: &str = "127.0.0.1:9917";

/// `vc-agent diagnose`: exit status and text.
fn diagnose_text(ns: &NetNs, cfg: &Path) -> (bool, String) {
    let out = ns
        .command(AGENT.bin())
        .args(["diagnose", "-c"])
        .arg(cfg)
        .output()
        .expect("vc-agent diagnose");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (
        out.status.success(),
        format!("{text}{}", String::from_utf8_lossy(&out.stderr)),
    )
}

/// `vc-agent diagnose --json`, with how long it took; the exit status must agree.
fn diagnose(ns: &NetNs, cfg: &Path) -> (Diagnosis, Duration) {
    let t0 = Instant::now();
    let out = ns
        .command(AGENT.bin())
        .args(["diagnose", "--json", "-c"])
        .arg(cfg)
        .output()
        .expect("vc-agent diagnose --json");
    let took = t0.elapsed();
    let d: Diagnosis = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    // 0 when every step passes, 1 when one fails.
    let code = i32::from(!d.ok());
    assert_eq!(out.status.code(), Some(code), "exit status vs verdict\n{d}");
    (d, took)
}

fn http(ns: &NetNs, request: Vec<u8>) -> String {
    ns.run_in(move || {
        let mut s = TcpStream::connect(METRICS).expect("connect to the metrics endpoint");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        // The server may answer (431) and close before all of an oversized head is sent.
        let _ = s.write_all(&request);
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    })
    .expect("thread")
}

fn scrape(ns: &NetNs) -> Exposition {
    let answer = http(
        ns,
        b"GET /metrics HTTP/1.1\r\nHost: vc\r\nAccept: text/plain\r\n\r\n".to_vec(),
    );
    let (head, body) = answer.split_once("\r\n\r\n").expect("head and body");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(
        head.contains(&format!("Content-Length: {}\r\n", body.len())),
        "{head}"
    );
    parse(body).unwrap_or_else(|e| panic!("invalid exposition: {e}\n{body}"))
}

fn metric(e: &Exposition, name: &str, labels: &[(&str, &str)]) -> i64 {
    e.int(name, labels)
        .unwrap_or_else(|| panic!("no {name} {labels:?}"))
}

fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default()
}

/// The agent's log, with `VC_SHOW_LOGS=1`.
fn show_log(dir: &Path) {
    if std::env::var_os("VC_SHOW_LOGS").is_some() {
        eprintln!("--- agent log:\n{}", log_of(dir));
    }
}

/// The tree on a real agent: healthy, then BGP password and ASN faults, then a DC that does
/// not send its /25 and a cut path, then a DC that does not answer keepalives.
#[test]
fn diagnose_finds_each_fault_at_its_step() {
    if !privileged("diagnose_finds_each_fault_at_its_step") {
        return;
    }
    let t0 = Instant::now();
    let t = Topology::dcs_only(true);
    let dir = t.scratch("diagnose");
    std::fs::create_dir_all(&dir).expect("dir");
    let cfg = dir.join("vc.toml");
    std::fs::write(&cfg, config(&t, METRICS)).expect("config");
    let both = ["203.0.113.0/24"];
    let mut bird1 = bird(
        &t.dc1,
        [100, 64, 0, 2],
        DC1_AS,
        "lab-md5-a",
        &["203.0.113.0/25", both[0]],
    );
    let mut bird2 = bird(
        &t.dc2,
        [100, 64, 0, 6],
        DC2_AS,
        "lab-md5-b",
        &["203.0.113.128/25", both[0]],
    );
    let _agent = AGENT.start(&t.cpe, &cfg, &dir.join("agent.log"));

    healthy(&t, &cfg, &dir);
    eprintln!("MEASURE healthy phase done after {:?}", t0.elapsed());

    // DC1's BGP with another password, DC2's with another AS (restarted, not reconfigured:
    // a reconfiguration would send a Cease that is no part of the fault).
    bird1.kill();
    bird2.kill();
    bird1 = bird(
        &t.dc1,
        [100, 64, 0, 2],
        DC1_AS,
        "not-the-form-password",
        &["203.0.113.0/25", both[0]],
    );
    bird2 = bird(
        &t.dc2,
        [100, 64, 0, 6],
        64699,
        "lab-md5-b",
        &["203.0.113.128/25", both[0]],
    );
    bgp_faults(&t, &cfg, &dir);
    eprintln!("MEASURE BGP faults done after {:?}", t0.elapsed());

    // DC1 right again but without its /25; DC2's path cut.
    bird1.kill();
    let _bird1 = bird(&t.dc1, [100, 64, 0, 2], DC1_AS, "lab-md5-a", &both);
    t.wan.sh("ip link set d2 down").expect("cut DC2");
    route_and_path_faults(&t, &cfg, &dir);
    eprintln!(
        "MEASURE route and path faults done after {:?}",
        t0.elapsed()
    );

    // DC2's path back, but DC2 reflects no keepalive (as with keepalives off on its side):
    // the reflected keepalive is the one GRE packet DC2 forwards out of its tunnel device.
    t.wan.sh("ip link set d2 up").expect("heal DC2");
    t.dc2
        .sh("nft add table inet vcdiag; \
             nft 'add chain inet vcdiag ka { type filter hook forward priority 0; }'; \
             nft add rule inet vcdiag ka iifname vc-cpe ip protocol gre drop")
        .expect("nft");
    keepalives_unanswered(&t, &cfg, &dir);
    drop(bird2);
    show_log(&dir);
    eprintln!("MEASURE whole test {:?}", t0.elapsed());
}

/// Every step passes; the metrics say the same.
fn healthy(t: &Topology, cfg: &Path, dir: &Path) {
    let up = wait_for(Duration::from_secs(20), "both tunnels healthy", || {
        let s = AGENT.status(&t.cpe, cfg)?;
        s.tunnels
            .iter()
            .all(|t| {
                t.bgp.as_ref().is_some_and(|b| b.established)
                    && t.accepted_prefixes.len() == 2
                    && t.keepalive.replies > 0
            })
            .then_some(s)
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", log_of(dir)));
    let (ok, text) = diagnose_text(&t.cpe, cfg);
    assert!(ok, "healthy, yet exit status 1:\n{text}");
    for tunnel in ["A → DC1", "B → DC2"] {
        assert!(text.contains(&format!("Tunnel {tunnel}")), "{text}");
    }
    for line in [
        "[ n/a] 1. IKEv2 SA up and stable",
        "[ n/a] 2. IPsec child SA up, tunnel mode, GRE-only selectors",
        "[PASS] 3. GRE keepalives flowing",
        "[PASS] 4. ping tunnel IP to tunnel IP",
        "ping 100.64.0.2 from 100.64.0.1: 3/3 answered",
        "ping 100.64.0.6 from 100.64.0.5: 3/3 answered",
        "[PASS] 5. BGP session Established",
        "[PASS] 6. routes",
    ] {
        assert!(text.contains(line), "{line:?} missing:\n{text}");
    }
    assert_eq!(text.matches("[PASS]").count(), 8, "{text}");
    assert!(
        text.contains("Result: every step passes on every tunnel."),
        "{text}"
    );
    eprintln!("--- healthy:\n{text}");
    let (d, took) = diagnose(&t.cpe, cfg);
    assert!(took < Duration::from_secs(5), "diagnose took {took:?}");
    for tunnel in &d.tunnels {
        for s in &tunnel.steps {
            let want = if s.step <= Step::ChildSa {
                Verdict::NotApplicable
            } else {
                Verdict::Pass
            };
            assert_eq!(s.verdict, want, "{d}");
        }
    }
    one_tunnel(t, cfg);
    metrics_when_healthy(t, &up);
}

/// `--tunnel b`: only that tunnel's tree, in the text and in the JSON.
fn one_tunnel(t: &Topology, cfg: &Path) {
    let out = t
        .cpe
        .command(AGENT.bin())
        .args(["diagnose", "--tunnel", "b", "--json", "-c"])
        .arg(cfg)
        .output()
        .expect("vc-agent diagnose --tunnel b");
    assert_eq!(out.status.code(), Some(0));
    let d: Diagnosis = serde_json::from_slice(&out.stdout).expect("JSON");
    let ids: Vec<TunnelId> = d.tunnels.iter().map(|t| t.ends.id).collect();
    assert_eq!(ids, [TunnelId::B], "{d}");
}

/// The endpoint: valid exposition with the state `status` shows; bad requests refused.
fn metrics_when_healthy(t: &Topology, status: &AgentStatus) {
    let e = scrape(&t.cpe);
    let a = [("tunnel", "a"), ("dc", "1")];
    let with = |k, v| {
        let mut l = a.to_vec();
        l.push((k, v));
        l
    };
    assert_eq!(
        metric(&e, "vc_agent_info", &[("mode", "external-ipsec")]),
        1
    );
    assert_eq!(metric(&e, "vc_tunnel_up", &a), 1);
    assert_eq!(metric(&e, "vc_tunnel_datapath_up", &a), 1);
    assert_eq!(
        metric(&e, "vc_tunnel_mtu_bytes", &a),
        i64::from(status.tunnels[0].counters.mtu)
    );
    assert_eq!(metric(&e, "vc_tunnel_mss_bytes", &a), 1350);
    assert_eq!(metric(&e, "vc_bgp_state", &with("state", "Established")), 1);
    assert_eq!(metric(&e, "vc_bgp_state", &with("state", "Active")), 0);
    assert_eq!(metric(&e, "vc_bgp_prefixes_accepted", &a), 2);
    assert_eq!(metric(&e, "vc_bgp_prefixes_advertised", &a), 1);
    assert_eq!(metric(&e, "vc_tunnel_prefixes_missing", &a), 0);
    let replies = metric(&e, "vc_tunnel_keepalive_replies_total", &a);
    assert!(replies > 0);
    assert!(metric(&e, "vc_tunnel_keepalives_sent_total", &a) >= replies);
    assert!(metric(&e, "vc_tunnel_packets_total", &with("direction", "tx")) > 0);
    assert!(metric(&e, "vc_tunnel_packets_total", &with("direction", "rx")) > 0);
    assert!(
        metric(
            &e,
            "vc_datapath_packets_total",
            &[
                ("hook", "tunnel_tx"),
                ("reason", "forwarded"),
                ("drop", "false")
            ]
        ) > 0
    );
    assert!(e.types.keys().all(|n| !n.starts_with("vc_ipsec_")));
    for (request, status) in [
        (b"GET /nope HTTP/1.1\r\n\r\n".to_vec(), "404"),
        (b"POST /metrics HTTP/1.1\r\n\r\n".to_vec(), "405"),
        (b"hello\r\n\r\n".to_vec(), "400"),
        (vec![b'x'; 20_000], "431"),
    ] {
        let answer = http(&t.cpe, request.clone());
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{:?} → {answer:?}",
            String::from_utf8_lossy(&request[..request.len().min(30)])
        );
    }
    // Still serving after the bad ones.
    drop(scrape(&t.cpe));
}

/// A: BGP password mismatch; B: wrong ASN. Both at step 5.
fn bgp_faults(t: &Topology, cfg: &Path, dir: &Path) {
    let started = Instant::now();
    wait_for(Duration::from_secs(40), "both BGP faults seen", || {
        let s = AGENT.status(&t.cpe, cfg)?;
        let a = s.tunnels[0].bgp.as_ref()?;
        let b = s.tunnels[1].bgp.as_ref()?;
        let notification = b.last_notification.as_ref()?;
        let bad_peer_as = (notification.code, notification.subcode) == (2, 2);
        (a.likely_password_mismatch && bad_peer_as).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", log_of(dir)));
    eprintln!("MEASURE BGP faults visible after {:?}", started.elapsed());
    // The kernel's TCP-MD5 counters are per host: A's mismatch must not be blamed on B, whose
    // OPEN came through.
    let now = AGENT.status(&t.cpe, cfg).expect("status");
    let session_b = now.tunnels[1].bgp.as_ref().expect("bgp");
    assert!(!session_b.likely_password_mismatch, "{}", now.tunnels[1]);
    let (diag, _) = diagnose(&t.cpe, cfg);
    assert!(!diag.ok());
    let ta = diag.tunnel(TunnelId::A).expect("a");
    assert_eq!(ta.first_failure, Some(Step::Bgp), "{diag}");
    assert_eq!(ta.causes()[0], Cause::BgpPasswordMismatch, "{diag}");
    let tb = diag.tunnel(TunnelId::B).expect("b");
    assert_eq!(tb.first_failure, Some(Step::Bgp), "{diag}");
    assert_eq!(tb.causes(), [Cause::WrongAsn], "{diag}");
    for tunnel in [ta, tb] {
        assert_eq!(tunnel.step(Step::Ping).verdict, Verdict::Pass, "{diag}");
        assert_eq!(
            tunnel.step(Step::Routes).verdict,
            Verdict::NotChecked,
            "{diag}"
        );
    }
    let (ok, text) = diagnose_text(&t.cpe, cfg);
    assert!(!ok, "{text}");
    for line in [
        "[FAIL] 5. BGP session Established",
        "likely cause (BGP password mismatch)",
        "tunnel.a.bgp_password",
        "likely cause (wrong ASN): wrong ASN: the DC's OPEN carries AS 64699, not tunnel.b.cisco_asn (64602)",
        "evidence: last error: sent NOTIFICATION 2/2 OPEN Message Error / Bad Peer AS",
        "Result: tunnel A fails at step 5 (BGP session Established), likely BGP password mismatch; tunnel B fails at step 5 (BGP session Established), likely wrong ASN.",
    ] {
        assert!(text.contains(line), "{line:?} missing:\n{text}");
    }
    eprintln!("--- BGP faults:\n{text}");
    let e = scrape(&t.cpe);
    assert_eq!(
        metric(&e, "vc_bgp_likely_password_mismatch", &[("tunnel", "a")]),
        1
    );
    assert_eq!(
        metric(
            &e,
            "vc_bgp_state",
            &[("tunnel", "b"), ("state", "Established")]
        ),
        0
    );
    assert!(metric(&e, "vc_bgp_flaps_total", &[("tunnel", "a")]) >= 1);
}

/// A: the DC does not send its /25 (step 6); B: the path is cut (step 3, nothing back).
fn route_and_path_faults(t: &Topology, cfg: &Path, dir: &Path) {
    let started = Instant::now();
    wait_for(
        Duration::from_secs(40),
        "A up with the /24 only, B dead",
        || {
            let s = AGENT.status(&t.cpe, cfg)?;
            let (a, b) = (&s.tunnels[0], &s.tunnels[1]);
            (a.bgp.as_ref()?.established
                && a.accepted_prefixes == ["203.0.113.0/24".parse::<Ipv4Net>().ok()?]
                && !b.keepalive.alive)
                .then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", log_of(dir)));
    eprintln!("MEASURE A re-established after {:?}", started.elapsed());
    let (diag, _) = diagnose(&t.cpe, cfg);
    let ta = diag.tunnel(TunnelId::A).expect("a");
    assert_eq!(ta.first_failure, Some(Step::Routes), "{diag}");
    assert_eq!(ta.causes(), [Cause::PrefixMissing], "{diag}");
    assert!(
        ta.step(Step::Routes).causes[0]
            .text
            .contains("does not send 203.0.113.0/25"),
        "{diag}"
    );
    let tb = diag.tunnel(TunnelId::B).expect("b");
    assert_eq!(tb.first_failure, Some(Step::Keepalives), "{diag}");
    assert_eq!(tb.causes(), [Cause::PathDown], "{diag}");
    let evidence = tb.step(Step::Keepalives).causes[0].evidence.join("\n");
    assert!(
        evidence.contains("ping 100.64.0.6 from 100.64.0.5: 0/3 answered"),
        "{evidence}"
    );
    assert!(evidence.contains("(+0 during the probe)"), "{evidence}");
    eprintln!("--- route and path faults:\n{diag}");
    let e = scrape(&t.cpe);
    assert_eq!(metric(&e, "vc_tunnel_up", &[("tunnel", "b")]), 0);
    assert_eq!(
        metric(&e, "vc_tunnel_prefixes_missing", &[("tunnel", "a")]),
        1
    );
    assert!(metric(&e, "vc_tunnel_keepalives_missed", &[("tunnel", "b")]) >= 3);
}

/// B: traffic flows (ping, GRE decapsulated) but no keepalive comes back: keepalives off on
/// the DC (step 3).
fn keepalives_unanswered(t: &Topology, cfg: &Path, dir: &Path) {
    let d = wait_for(
        Duration::from_secs(20),
        "B diagnosed with keepalives off on the DC",
        || {
            let (d, _) = diagnose(&t.cpe, cfg);
            let b = d.tunnel(TunnelId::B)?;
            (b.first_failure == Some(Step::Keepalives)
                && b.causes() == [Cause::KeepaliveDisabledOnDc])
            .then_some(d)
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}\n{}", diagnose_text(&t.cpe, cfg).1, log_of(dir)));
    let b = d.tunnel(TunnelId::B).expect("b");
    let evidence = b.step(Step::Keepalives).causes[0].evidence.join("\n");
    assert!(
        evidence.contains("ping 100.64.0.6 from 100.64.0.5: 3/3 answered"),
        "{evidence}"
    );
    assert!(
        b.step(Step::Keepalives).causes[0]
            .text
            .contains("tunnel.b.keepalive_interval_s = 0"),
        "{d}"
    );
    eprintln!("--- keepalives unanswered:\n{d}");
}

/// IPsec mode: a DC responder with another pre-shared key. IKE fails with
/// `AUTHENTICATION_FAILED` before any SA would be installed, so this needs no kernel ESP.
#[test]
fn diagnose_names_a_wrong_psk_at_step_1() {
    if !privileged("diagnose_names_a_wrong_psk_at_step_1") {
        return;
    }
    vc_testkit::charon::require().expect("charon");
    let t0 = Instant::now();
    let lab = ike_lab::Lab::new("dpsk", ike_lab::Options::default());
    // The CPE's LAN device (the lab has none; the datapath wants one; no dummy driver here).
    lab.cpe
        .sh("ip link add lan type veth peer name lanp && ip link set lan up && ip link set lanp up")
        .expect("lan");
    let bpffs = vc_testkit::bpffs::TempBpfFs::new().expect("bpffs");
    let text = format!(
        "{}\n[agent]\npin_dir = \"{}\"\nstate_dir = \"{}\"\nmetrics_listen = \"{METRICS}\"\n",
        lab.config_text(""),
        bpffs.path().join("cpe").display(),
        lab.dir.join("state").display()
    );
    let cfg = lab.dir.join("vc-agent.toml");
    std::fs::write(&cfg, text).expect("config");
    let dc = lab.start_dc(|c| c.psk = "not-the-form-psk".into());
    let _agent = AGENT.start(&lab.cpe, &cfg, &lab.dir.join("agent.log"));
    wait_for(Duration::from_secs(30), "AUTHENTICATION_FAILED", || {
        let s = AGENT.status(&lab.cpe, &cfg)?;
        let e = s.tunnels[0].ipsec.as_ref()?.last_error.as_ref()?;
        (e.failure == Failure::AuthenticationFailed).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", log_of(&lab.dir)));
    let (d, _) = diagnose(&lab.cpe, &cfg);
    let a = d.tunnel(TunnelId::A).expect("a");
    assert_eq!(a.first_failure, Some(Step::IkeSa), "{d}");
    assert_eq!(a.causes(), [Cause::PskOrIdentity], "{d}");
    let (ok, text) = diagnose_text(&lab.cpe, &cfg);
    assert!(!ok);
    for line in [
        "[FAIL] 1. IKEv2 SA up and stable",
        "likely cause (wrong PSK or IKE identity): wrong pre-shared key or IKE identity: tunnel.a.ike_psk",
        "evidence: last IPsec error AUTHENTICATION_FAILED",
        "[ -- ] 2. IPsec child SA",
    ] {
        assert!(text.contains(line), "{line:?} missing:\n{text}");
    }
    eprintln!("--- wrong PSK:\n{text}");
    let e = scrape(&lab.cpe);
    assert_eq!(metric(&e, "vc_ipsec_ike_sa_up", &[("tunnel", "a")]), 0);
    assert_eq!(
        metric(
            &e,
            "vc_ipsec_last_failure",
            &[("tunnel", "a"), ("failure", "AUTHENTICATION_FAILED")]
        ),
        1
    );
    assert_eq!(metric(&e, "vc_charon_up", &[]), 1);
    // Neither secret in the agent's log (R10, R17).
    let log = log_of(&lab.dir);
    assert!(!log.contains(ike_lab::PSK) && !log.contains(ike_lab::BGP_PASSWORD));
    drop(dc);
    show_log(&lab.dir);
    eprintln!("MEASURE wrong PSK test {:?}", t0.elapsed());
}
