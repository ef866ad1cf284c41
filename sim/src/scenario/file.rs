//! Loading a scenario file: parsing and validating the base, then each `[[sweep]]` row deep-merged
//! over it into a [`Row`]; errors carry the line of the offending key, table or row.

use std::path::{Path, PathBuf};

use super::lines::{line_col, locate};
use super::validate::validate;
use super::{Scenario, ScenarioError};

/// One runnable variant of a scenario file.
#[derive(Clone, Debug)]
pub struct Row {
    /// Row index (0 when the file has no sweep).
    pub index: usize,
    /// Label (from the row's `label`, or its overrides).
    pub label: String,
    /// The overrides, as `dotted.key = value` pairs (for plots and tables).
    pub params: Vec<(String, String)>,
    /// The resolved scenario.
    pub scenario: Scenario,
}

/// A loaded scenario file.
#[derive(Clone, Debug)]
pub struct ScenarioFile {
    /// Where it came from.
    pub path: PathBuf,
    /// Its rows (one when there is no sweep).
    pub rows: Vec<Row>,
}

impl ScenarioFile {
    /// Reads, parses and validates a scenario file.
    ///
    /// # Errors
    /// A typed [`ScenarioError`] with the line of the problem.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses and validates scenario text (`path` is used in messages).
    ///
    /// # Errors
    /// A typed [`ScenarioError`] with the line of the problem.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ScenarioError> {
        let parse_err = |e: toml::de::Error| {
            let (line, column) = e.span().map_or((0, 0), |s| line_col(text, s.start));
            ScenarioError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().to_string(),
            }
        };
        let base: Scenario = toml::from_str(text).map_err(parse_err)?;
        validate(&base).map_err(|(field, message)| ScenarioError::Invalid {
            path: path.to_path_buf(),
            line: locate(text, &field),
            field,
            message,
        })?;
        if base.sweep.is_empty() {
            let mut scenario = base;
            scenario.sweep.clear();
            return Ok(Self {
                path: path.to_path_buf(),
                rows: vec![Row {
                    index: 0,
                    label: "base".into(),
                    params: Vec::new(),
                    scenario,
                }],
            });
        }
        let mut doc: toml::Table = text.parse().map_err(parse_err)?;
        doc.remove("sweep");
        let mut rows = Vec::new();
        for (index, spanned) in base.sweep.iter().enumerate() {
            let line = line_col(text, spanned.span().start).0;
            let mut overrides = spanned.get_ref().clone();
            let explicit_label = match overrides.remove("label") {
                Some(toml::Value::String(s)) => Some(s),
                Some(other) => {
                    return Err(ScenarioError::Sweep {
                        path: path.to_path_buf(),
                        line,
                        row: index,
                        label: other.to_string(),
                        message: "label must be a string".into(),
                    });
                }
                None => None,
            };
            let mut params = Vec::new();
            flatten("", &overrides, &mut params);
            let label = explicit_label.unwrap_or_else(|| {
                params
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            });
            let mut merged = doc.clone();
            merge(&mut merged, overrides);
            let sweep_err = |message: String| ScenarioError::Sweep {
                path: path.to_path_buf(),
                line,
                row: index,
                label: label.clone(),
                message,
            };
            let scenario: Scenario = toml::Value::Table(merged)
                .try_into()
                .map_err(|e: toml::de::Error| sweep_err(e.message().to_string()))?;
            validate(&scenario).map_err(|(f, m)| sweep_err(format!("{f}: {m}")))?;
            rows.push(Row {
                index,
                label,
                params,
                scenario,
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            rows,
        })
    }

    /// The rows to run: all, or the one `--row` selects.
    ///
    /// # Errors
    /// [`ScenarioError::NoSuchRow`].
    pub fn select(&self, row: Option<usize>) -> Result<Vec<&Row>, ScenarioError> {
        match row {
            None => Ok(self.rows.iter().collect()),
            Some(r) => self
                .rows
                .get(r)
                .map(|row| vec![row])
                .ok_or(ScenarioError::NoSuchRow {
                    path: self.path.clone(),
                    row: r,
                    rows: self.rows.len(),
                }),
        }
    }
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<(String, String)>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => flatten(&key, t, out),
            toml::Value::String(s) => out.push((key, s.clone())),
            other => out.push((key, other.to_string())),
        }
    }
}

/// Deep merge: tables merge key by key, anything else replaces.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{LatencyDist, Millis};

    const MINIMAL: &str = "name = \"t\"\n[network]\nmembers = 4\nlabs = 2\nperiods = 1\n";

    #[test]
    fn minimal_file_gets_defaults() {
        let f = ScenarioFile::parse(Path::new("m.toml"), MINIMAL).expect("valid");
        assert_eq!(f.rows.len(), 1);
        let s = &f.rows[0].scenario;
        assert_eq!(s.schedule.period, Millis(60_000));
        assert_eq!(s.gossip.mesh_degree, 6);
        assert!(s.expect.live);
    }

    #[test]
    fn type_errors_carry_the_line() {
        let text = format!("{MINIMAL}[links]\nloss = \"lots\"\n");
        match ScenarioFile::parse(Path::new("x.toml"), &text) {
            Err(ScenarioError::Parse { line, .. }) => assert_eq!(line, 7),
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn semantic_errors_carry_the_line_of_the_table() {
        let text = format!(
            "{MINIMAL}[[adversary]]\nmembers = [1]\nbehaviour = \"silent\"\n[[adversary]]\nmembers = [9]\nbehaviour = \"silent\"\n"
        );
        match ScenarioFile::parse(Path::new("x.toml"), &text) {
            Err(ScenarioError::Invalid { line, field, .. }) => {
                assert_eq!(field, "adversary[1]");
                assert_eq!(line, 9);
            }
            other => panic!("expected an invalid-field error, got {other:?}"),
        }
        let text = format!("{MINIMAL}threshold = 2\n");
        match ScenarioFile::parse(Path::new("x.toml"), &text) {
            Err(ScenarioError::Invalid { line, field, .. }) => {
                assert_eq!(field, "network.threshold");
                assert_eq!(line, 6);
            }
            other => panic!("expected an invalid threshold, got {other:?}"),
        }
    }

    #[test]
    fn unknown_keys_and_behaviours_are_refused() {
        let text = format!("{MINIMAL}[links]\nlatncy = 5\n");
        assert!(matches!(
            ScenarioFile::parse(Path::new("x.toml"), &text),
            Err(ScenarioError::Parse { line: 7, .. })
        ));
        let text = format!("{MINIMAL}[[adversary]]\nmembers = [1]\nbehaviour = \"sneaky\"\n");
        let err = ScenarioFile::parse(Path::new("x.toml"), &text).expect_err("refused");
        assert!(err.to_string().contains("unknown behaviour"), "{err}");
    }

    #[test]
    fn sweep_rows_merge_over_the_base() {
        let text = format!(
            "{MINIMAL}[links]\nloss = 0.0\nlatency = {{ dist = \"fixed\", value = \"5ms\" }}\n[[sweep]]\nlinks.loss = 0.1\n[[sweep]]\nlabel = \"big\"\nnetwork.members = 7\n"
        );
        let f = ScenarioFile::parse(Path::new("x.toml"), &text).expect("valid");
        assert_eq!(f.rows.len(), 2);
        assert_eq!(f.rows[0].label, "links.loss=0.1");
        assert!((f.rows[0].scenario.links.loss - 0.1).abs() < 1e-12);
        assert_eq!(f.rows[0].scenario.network.members, 4);
        assert_eq!(f.rows[1].label, "big");
        assert_eq!(f.rows[1].scenario.network.members, 7);
        assert_eq!(
            f.rows[1].scenario.links.latency,
            LatencyDist::Fixed { value: Millis(5) }
        );
        let bad = format!("{MINIMAL}[[sweep]]\nlinks.loss = 3.0\n");
        match ScenarioFile::parse(Path::new("x.toml"), &bad) {
            Err(ScenarioError::Sweep {
                row: 0, line: 6, ..
            }) => {}
            other => panic!("expected a sweep error, got {other:?}"),
        }
    }
}
