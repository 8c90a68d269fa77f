//! VICI messages: an ordered tree of key/values, sections and lists (strongSwan
//! `src/libcharon/plugins/vici/README.md`, "Message format").
//!
//! ```text
//! element      = type(u8) [name] [value]
//! SECTION_START 1  name              opens a named section
//! SECTION_END   2                    closes the innermost section
//! KEY_VALUE     3  name value        a key in the current section
//! LIST_START    4  name              opens a named list (lists do not nest)
//! LIST_ITEM     5  value             an item of the open list
//! LIST_END      6                    closes the list
//!
//! name  = len(u8)      bytes[len]    ASCII, not NUL-terminated
//! value = len(u16 BE)  bytes[len]    a blob; charon sends strings
//! ```
//!
//! Example, `key1 = value1` then `section1 { list1 = [ item1 ] }`:
//!
//! ```text
//! 03 04 "key1" 00 06 "value1"  01 08 "section1"  04 05 "list1"  05 00 05 "item1"  06  02
//! ```
use std::fmt;

const SECTION_START: u8 = 1;
const SECTION_END: u8 = 2;
const KEY_VALUE: u8 = 3;
const LIST_START: u8 = 4;
const LIST_ITEM: u8 = 5;
const LIST_END: u8 = 6;

/// Nesting deeper than charon ever sends (it uses about 5 levels) is refused rather than
/// recursed into.
pub const MAX_DEPTH: usize = 32;

/// A message (or a section of one): named elements in wire order.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Message(pub Vec<(String, Element)>);

/// One named element.
#[derive(Clone, PartialEq, Eq)]
pub enum Element {
    Value(Vec<u8>),
    Section(Message),
    List(Vec<Vec<u8>>),
}

/// Why bytes are not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message truncated at byte {0}")]
    Truncated(usize),
    #[error("unknown element type {kind} at byte {at}")]
    UnknownElement { kind: u8, at: usize },
    #[error("SECTION_END without an open section at byte {0}")]
    UnbalancedSectionEnd(usize),
    #[error("{0} outside a list at byte {1}")]
    OutsideList(&'static str, usize),
    #[error("element type {kind} inside a list at byte {at}")]
    InsideList { kind: u8, at: usize },
    #[error("{0} section(s) not closed")]
    UnclosedSection(usize),
    #[error("list not closed")]
    UnclosedList,
    #[error("sections nested deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("name at byte {0} is not UTF-8")]
    NameNotUtf8(usize),
}

/// Why a message cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("name {0:?} is longer than 255 bytes")]
    NameTooLong(String),
    #[error("value of {0:?} is longer than 65535 bytes")]
    ValueTooLong(String),
}

impl Message {
    #[must_use]
    pub fn new() -> Message {
        Message(Vec::new())
    }

    /// Adds `key = value`.
    #[must_use]
    pub fn kv(mut self, key: impl Into<String>, value: impl AsRef<[u8]>) -> Message {
        self.0
            .push((key.into(), Element::Value(value.as_ref().to_vec())));
        self
    }

    /// Adds a section.
    #[must_use]
    pub fn section(mut self, key: impl Into<String>, section: Message) -> Message {
        self.0.push((key.into(), Element::Section(section)));
        self
    }

    /// Adds a list.
    #[must_use]
    pub fn list<I, V>(mut self, key: impl Into<String>, items: I) -> Message
    where
        I: IntoIterator<Item = V>,
        V: AsRef<[u8]>,
    {
        let items = items.into_iter().map(|v| v.as_ref().to_vec()).collect();
        self.0.push((key.into(), Element::List(items)));
        self
    }

    /// The first element named `key`.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Element> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, e)| e)
    }

    /// A value as text (charon's values are strings).
    #[must_use]
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            Element::Value(v) => std::str::from_utf8(v).ok(),
            _ => None,
        }
    }

    /// A value parsed as a number.
    #[must_use]
    pub fn num<T: std::str::FromStr>(&self, key: &str) -> Option<T> {
        self.str(key)?.parse().ok()
    }

    /// Whether a value is `yes` (charon's booleans).
    #[must_use]
    pub fn yes(&self, key: &str) -> bool {
        self.str(key) == Some("yes")
    }

    /// A subsection.
    #[must_use]
    pub fn sub(&self, key: &str) -> Option<&Message> {
        match self.get(key)? {
            Element::Section(s) => Some(s),
            _ => None,
        }
    }

    /// A list's items as text (non-UTF-8 items are skipped).
    #[must_use]
    pub fn strs(&self, key: &str) -> Vec<&str> {
        match self.get(key) {
            Some(Element::List(items)) => items
                .iter()
                .filter_map(|i| std::str::from_utf8(i).ok())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The subsections, with their names, in order.
    pub fn sections(&self) -> impl Iterator<Item = (&str, &Message)> {
        self.0.iter().filter_map(|(k, e)| match e {
            Element::Section(s) => Some((k.as_str(), s)),
            _ => None,
        })
    }

    /// Appends the encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        for (key, element) in &self.0 {
            match element {
                Element::Value(v) => {
                    out.push(KEY_VALUE);
                    put_name(out, key)?;
                    put_value(out, key, v)?;
                }
                Element::Section(s) => {
                    out.push(SECTION_START);
                    put_name(out, key)?;
                    s.encode(out)?;
                    out.push(SECTION_END);
                }
                Element::List(items) => {
                    out.push(LIST_START);
                    put_name(out, key)?;
                    for item in items {
                        out.push(LIST_ITEM);
                        put_value(out, key, item)?;
                    }
                    out.push(LIST_END);
                }
            }
        }
        Ok(())
    }

    /// Decodes a whole message (the rest of a packet).
    pub fn decode(buf: &[u8]) -> Result<Message, DecodeError> {
        // An explicit stack instead of recursion: depth is bounded and errors carry offsets.
        let mut stack: Vec<(String, Message)> = vec![(String::new(), Message::new())];
        let mut list: Option<(String, Vec<Vec<u8>>)> = None;
        let mut r = Reader { buf, at: 0 };
        while let Some(kind) = r.byte_opt() {
            let at = r.at - 1;
            if let Some((_, items)) = list.as_mut() {
                match kind {
                    LIST_ITEM => items.push(r.value()?.to_vec()),
                    LIST_END => {
                        let (name, items) = list.take().unwrap_or_default();
                        push(&mut stack, name, Element::List(items));
                    }
                    _ => return Err(DecodeError::InsideList { kind, at }),
                }
                continue;
            }
            match kind {
                SECTION_START => {
                    let name = r.name()?;
                    if stack.len() > MAX_DEPTH {
                        return Err(DecodeError::TooDeep);
                    }
                    stack.push((name, Message::new()));
                }
                SECTION_END => {
                    if stack.len() == 1 {
                        return Err(DecodeError::UnbalancedSectionEnd(at));
                    }
                    let (name, section) = stack.pop().unwrap_or_default();
                    push(&mut stack, name, Element::Section(section));
                }
                KEY_VALUE => {
                    let name = r.name()?;
                    let value = r.value()?.to_vec();
                    push(&mut stack, name, Element::Value(value));
                }
                LIST_START => list = Some((r.name()?, Vec::new())),
                LIST_ITEM => return Err(DecodeError::OutsideList("LIST_ITEM", at)),
                LIST_END => return Err(DecodeError::OutsideList("LIST_END", at)),
                _ => return Err(DecodeError::UnknownElement { kind, at }),
            }
        }
        if list.is_some() {
            return Err(DecodeError::UnclosedList);
        }
        if stack.len() > 1 {
            return Err(DecodeError::UnclosedSection(stack.len() - 1));
        }
        Ok(stack.pop().map(|(_, m)| m).unwrap_or_default())
    }
}

fn push(stack: &mut [(String, Message)], name: String, element: Element) {
    if let Some((_, top)) = stack.last_mut() {
        top.0.push((name, element));
    }
}

fn put_name(out: &mut Vec<u8>, name: &str) -> Result<(), EncodeError> {
    let len = u8::try_from(name.len()).map_err(|_| EncodeError::NameTooLong(name.into()))?;
    out.push(len);
    out.extend_from_slice(name.as_bytes());
    Ok(())
}

fn put_value(out: &mut Vec<u8>, key: &str, value: &[u8]) -> Result<(), EncodeError> {
    let len = u16::try_from(value.len()).map_err(|_| EncodeError::ValueTooLong(key.into()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(value);
    Ok(())
}

/// A bounds-checked cursor.
pub(super) struct Reader<'a> {
    pub buf: &'a [u8],
    pub at: usize,
}

impl<'a> Reader<'a> {
    pub fn byte_opt(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .at
            .checked_add(n)
            .ok_or(DecodeError::Truncated(self.at))?;
        let bytes = self
            .buf
            .get(self.at..end)
            .ok_or(DecodeError::Truncated(self.at))?;
        self.at = end;
        Ok(bytes)
    }

    pub fn name(&mut self) -> Result<String, DecodeError> {
        let len = self.take(1)?[0];
        let at = self.at;
        let bytes = self.take(len.into())?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::NameNotUtf8(at))
    }

    fn value(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.take(2)?;
        let len = u16::from_be_bytes([len[0], len[1]]);
        self.take(len.into())
    }
}

// Values print as text when they are (charon's always are), else as hex. Callers must not
// log messages that carry secrets (`load-shared`); the client never logs message bodies.
impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (k, e) in &self.0 {
            m.entry(k, e);
        }
        m.finish()
    }
}

impl fmt::Debug for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn blob(f: &mut fmt::Formatter<'_>, v: &[u8]) -> fmt::Result {
            if let Ok(s) = std::str::from_utf8(v) {
                write!(f, "{s:?}")
            } else {
                f.write_str("0x")?;
                v.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
        match self {
            Element::Value(v) => blob(f, v),
            Element::Section(s) => s.fmt(f),
            Element::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    blob(f, item)?;
                }
                f.write_str("]")
            }
        }
    }
}
