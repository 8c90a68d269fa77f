//! The kernel side: the BPF object, its maps and programs.
pub mod maps;
pub mod object;

pub use maps::{DatapathMaps, Ipv4Prefix};
pub use object::{PROGRAMS, Program, classifier, load};
