//! The programs pass this kernel's verifier.
use vc_agent::datapath::{Program, load};

#[test]
fn every_program_passes_the_verifier() {
    if !vc_testkit::privilege::privileged("every_program_passes_the_verifier") {
        return;
    }
    let mut all = vc_agent::datapath::PROGRAMS.to_vec();
    all.push(Program::Noop);
    load(&all).unwrap_or_else(|e| panic!("{e:?}"));
}
