use vc_agent::datapath::{PROGRAMS, Program, load};

#[test]
fn every_program_passes_the_verifier() {
    if !vc_testkit::privileged("every_program_passes_the_verifier") {
        return;
    }
    let mut all = PROGRAMS.to_vec();
    all.push(Program::Noop);
    load(&all).unwrap_or_else(|e| panic!("{e:?}"));
}
