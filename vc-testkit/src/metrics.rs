//! A strict reader of Prometheus' text exposition format (0.0.4) and of `OpenMetrics` text,
//! for tests (promtool is not installed here): every line must parse, every sample belong to
//! the family its `# TYPE` announced, families must not interleave, series must not repeat,
//! counters must not be negative.
use std::collections::{BTreeMap, BTreeSet};

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed exposition.
#[derive(Clone, Debug, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    /// Family name → type (`counter`, `gauge`...), as `# TYPE` said.
    pub types: BTreeMap<String, String>,
    pub help: BTreeMap<String, String>,
}

impl Exposition {
    /// The value of the one sample `name` whose labels include `labels`.
    #[must_use]
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found = self.find(name, labels);
        let first = found.next()?;
        assert!(
            found.next().is_none(),
            "{name} {labels:?} matches several series"
        );
        Some(first.value)
    }

    /// [`Exposition::value`] of a sample that must be a whole number (counters, flags).
    #[must_use]
    pub fn int(&self, name: &str, labels: &[(&str, &str)]) -> Option<i64> {
        self.value(name, labels).map(|v| {
            assert!(
                v.fract() == 0.0 && v.abs() < 9.0e15,
                "{name} {labels:?} = {v}"
            );
            #[expect(
                clippy::cast_possible_truncation,
                reason = "checked whole and in range"
            )]
            let i = v as i64;
            i
        })
    }

    /// The samples `name` whose labels include `labels`.
    pub fn find<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(name: &str) -> bool {
    valid_name(name) && !name.contains(':')
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => v.parse().map_err(|_| format!("bad value {v:?}")),
    }
}

/// `{a="x",b="y"}` at the start of `s`; returns the labels and the rest.
fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = s.strip_prefix('{').ok_or("expected {")?;
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let name = &rest[..eq];
        if !valid_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    c => return Err(format!("bad escape \\{c}")),
                },
                (_, '\n') => return Err("newline in label value".into()),
                (_, c) => value.push(c),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} twice"));
        }
        rest = &rest[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    if !valid_name(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    let (labels, rest) = if line[name_end..].starts_with('{') {
        parse_labels(&line[name_end..])?
    } else {
        (BTreeMap::new(), &line[name_end..])
    };
    let mut fields = rest
        .strip_prefix(' ')
        .ok_or("no space before the value")?
        .split(' ');
    let value = parse_value(fields.next().ok_or("no value")?)?;
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("bad timestamp {ts:?}"))?;
    }
    if fields.next().is_some() {
        return Err("trailing fields".into());
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// Which `# TYPE`d family a sample name belongs to.
fn family_of<'a>(
    name: &'a str,
    types: &BTreeMap<String, String>,
    openmetrics: bool,
) -> Option<&'a str> {
    if types.contains_key(name) {
        return Some(name);
    }
    let suffixes: &[&str] = if openmetrics {
        &["_total", "_created", "_info", "_bucket", "_sum", "_count"]
    } else {
        &["_bucket", "_sum", "_count"]
    };
    suffixes.iter().find_map(|s| {
        let base = name.strip_suffix(s)?;
        types.contains_key(base).then_some(base)
    })
}

/// Parses Prometheus text 0.0.4, or `OpenMetrics` text when it ends with `# EOF`.
pub fn parse(text: &str) -> Result<Exposition, String> {
    let openmetrics = text.ends_with("# EOF\n");
    let body = if openmetrics {
        &text[..text.len() - "# EOF\n".len()]
    } else {
        text
    };
    if !body.is_empty() && !body.ends_with('\n') {
        return Err("the last line has no newline".into());
    }
    let mut e = Exposition::default();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut series = BTreeSet::new();
    for (n, line) in body.lines().enumerate() {
        let err = |m: String| format!("line {}: {m}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let arg = parts.next().unwrap_or("");
            if !valid_name(name) {
                return Err(err(format!("bad name {name:?}")));
            }
            match kind {
                "HELP" => {
                    e.help.insert(name.into(), arg.into());
                }
                "TYPE" => {
                    let types: &[&str] = if openmetrics {
                        &[
                            "counter",
                            "gauge",
                            "histogram",
                            "summary",
                            "info",
                            "stateset",
                            "unknown",
                        ]
                    } else {
                        &["counter", "gauge", "histogram", "summary", "untyped"]
                    };
                    if !types.contains(&arg) {
                        return Err(err(format!("bad type {arg:?}")));
                    }
                    if e.types.insert(name.into(), arg.into()).is_some() {
                        return Err(err("family typed twice".into()));
                    }
                }
                "UNIT" if openmetrics => {}
                _ => return Err(err(format!("unknown comment {kind:?}"))),
            }
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            return Err(err("stray line".into()));
        }
        let sample = parse_sample(line).map_err(err)?;
        let family = family_of(&sample.name, &e.types, openmetrics)
            .ok_or_else(|| err("sample of a family without # TYPE".into()))?
            .to_string();
        if current.as_deref() != Some(family.as_str()) {
            if done.contains(&family) {
                return Err(err(format!("family {family} interleaved")));
            }
            if let Some(prev) = current.replace(family.clone()) {
                done.insert(prev);
            }
        }
        if e.types[&family] == "counter" && sample.value < 0.0 {
            return Err(err("negative counter".into()));
        }
        if !series.insert((sample.name.clone(), sample.labels.clone())) {
            return Err(err("series repeated".into()));
        }
        e.samples.push(sample);
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn reads_both_formats() {
        let text = "# HELP x_total Things.\n# TYPE x_total counter\nx_total{a=\"1\",b=\"q\\\"uote\"} 3\nx_total{a=\"2\"} 4 1700000000\n# TYPE g gauge\ng -1.5\n";
        let e = parse(text).expect("valid");
        assert_eq!(e.value("x_total", &[("a", "1")]), Some(3.0));
        assert_eq!(
            e.samples[0].labels.get("b").map(String::as_str),
            Some("q\"uote")
        );
        assert_eq!(e.value("g", &[]), Some(-1.5));
        let om = "# HELP x Things.\n# TYPE x counter\n# UNIT x bytes\nx_total 1\n# EOF\n";
        assert_eq!(parse(om).expect("valid").value("x_total", &[]), Some(1.0));
    }

    #[test]
    fn rejects_what_promtool_would() {
        for bad in [
            "x 1\n",                                                   // no TYPE
            "# TYPE x gauge\nx{a=1} 1\n",                              // unquoted
            "# TYPE x gauge\nx{a=\"1\"}\n",                            // no value
            "# TYPE x gauge\nx one\n",                                 // bad value
            "# TYPE x gauge\nx 1",                                     // no newline
            "# TYPE x gauge\n# TYPE y gauge\nx 1\ny 1\nx{a=\"\"} 1\n", // interleaved
            "# TYPE x gauge\nx 1\nx 2\n",                              // repeated
            "# TYPE x counter\nx -1\n",                                // negative counter
            "# TYPE x sometimes\nx 1\n",                               // bad type
            "# TYPE 1x gauge\n",                                       // bad name
            "# TYPE x gauge\n\nx 1\n",                                 // blank line
            "# TYPE x gauge\nx{a=\"1\",a=\"2\"} 1\n",                  // label twice
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
