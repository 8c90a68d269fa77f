//! One declaration for an enum whose variants are counted: each variant's number (its counter
//! slot) and its label (the stable metric name) are written next to it, and `ALL`, `name()`
//! and `from_u32()` are generated, so a new variant cannot be left out of any of them.

/// Declares a `#[repr(u32)]` enum in which every variant has an explicit number and a label,
/// the stable `snake_case` name that metrics and `vc-agent status` show. Generates `ALL` (every
/// variant, in declaration order), `name()` and `from_u32()`.
///
/// Numbers are append-only: a retired variant keeps its number, a number is never reused.
/// The compiler rejects a repeated number; a repeated or non-`snake_case` label fails the
/// build too.
///
/// ```
/// vc_common::labelled_enum! {
///     /// Where a packet went.
///     pub enum Exit {
///         /// Handed on.
///         Out = 0 => "out",
///         /// Dropped.
///         Bin = 3 => "bin",
///     }
/// }
/// assert_eq!(Exit::ALL, [Exit::Out, Exit::Bin]);
/// assert_eq!(Exit::Bin.name(), "bin");
/// assert_eq!(Exit::from_u32(3), Some(Exit::Bin));
/// assert_eq!(Exit::from_u32(1), None);
/// ```
///
/// A variant without its label does not compile:
///
/// ```compile_fail
/// vc_common::labelled_enum! {
///     pub enum Exit {
///         Out = 0 => "out",
///         Bin = 3,
///     }
/// }
/// ```
///
/// Neither does a label that is not `snake_case`, or one used twice:
///
/// ```compile_fail,E0080
/// vc_common::labelled_enum! {
///     pub enum Exit {
///         Out = 0 => "out",
///         Bin = 3 => "Bin",
///     }
/// }
/// ```
///
/// ```compile_fail,E0080
/// vc_common::labelled_enum! {
///     pub enum Exit {
///         Out = 0 => "out",
///         Bin = 3 => "out",
///     }
/// }
/// ```
#[macro_export]
macro_rules! labelled_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $(
                $(#[$variant_meta:meta])*
                $variant:ident = $number:literal => $label:literal
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $name {
            $(
                $(#[$variant_meta])*
                $variant = $number,
            )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: [$name; [$($name::$variant),+].len()] = [$($name::$variant),+];

            /// The metric label: stable, `snake_case`.
            #[must_use]
            pub const fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $label,)+
                }
            }

            /// The variant numbered `number`, if there is one.
            #[must_use]
            pub const fn from_u32(number: u32) -> ::core::option::Option<Self> {
                match number {
                    $($number => ::core::option::Option::Some($name::$variant),)+
                    _ => ::core::option::Option::None,
                }
            }
        }

        const _: () = ::core::assert!(
            $crate::labelled::labels_are_valid(&[$($label),+]),
            ::core::concat!(
                "the labels of ",
                ::core::stringify!($name),
                " must be snake_case and unique"
            ),
        );
    };
}

/// Whether every label is non-empty `snake_case` (a–z, 0–9, `_`, starting with a letter) and
/// no two are equal. Evaluated at compile time by [`labelled_enum!`].
#[doc(hidden)]
#[must_use]
pub const fn labels_are_valid(labels: &[&str]) -> bool {
    let mut i = 0;
    while i < labels.len() {
        if !is_snake_case(labels[i].as_bytes()) {
            return false;
        }
        let mut j = i + 1;
        while j < labels.len() {
            if bytes_equal(labels[i].as_bytes(), labels[j].as_bytes()) {
                return false;
            }
            j += 1;
        }
        i += 1;
    }
    true
}

const fn is_snake_case(label: &[u8]) -> bool {
    if label.is_empty() || !label[0].is_ascii_lowercase() {
        return false;
    }
    let mut i = 0;
    while i < label.len() {
        let c = label[i];
        if !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_') {
            return false;
        }
        i += 1;
    }
    true
}

const fn bytes_equal(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::labels_are_valid;

    #[test]
    fn labels_must_be_snake_case_and_unique() {
        assert!(labels_are_valid(&[
            "forwarded",
            "handover_too_big",
            "ipv4_x"
        ]));
        assert!(!labels_are_valid(&["forwarded", "forwarded"]), "repeated");
        assert!(!labels_are_valid(&["Forwarded"]), "upper case");
        assert!(!labels_are_valid(&["too-big"]), "dash");
        assert!(!labels_are_valid(&["_x"]), "leading underscore");
        assert!(!labels_are_valid(&[""]), "empty");
    }
}
