//! Output: the summary table, JSON and CSV metrics, and SVG plots.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use crate::runner::SeedOutcome;
use crate::scenario::Row;

/// Aggregates of one row over its seeds.
#[derive(Clone, Debug, Serialize)]
pub struct RowSummary {
    /// Row index.
    pub row: usize,
    /// Label.
    pub label: String,
    /// Overrides of the row.
    pub params: Vec<(String, String)>,
    /// Seeds run.
    pub seeds: usize,
    /// Seeds that met every expectation.
    pub passed: usize,
    /// Mean share of slots decided.
    pub share_decided: f64,
    /// Time to verdict (ms after the close), 50th percentile over all slots and seeds.
    pub ttv_p50_ms: Option<f64>,
    /// 95th percentile.
    pub ttv_p95_ms: Option<f64>,
    /// Largest.
    pub ttv_max_ms: Option<f64>,
    /// Mean signing sessions per decided slot.
    pub sessions_per_slot: f64,
    /// Mean bytes sent per member per run.
    pub bytes_per_member: f64,
    /// Mean messages sent per member per run.
    pub msgs_per_member: f64,
    /// Distinct culprits of the genesis roster named (over all seeds).
    pub culprits: Vec<u16>,
    /// Distinct culprits of later roster epochs, as `e<epoch>:<member>`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub later_culprits: Vec<String>,
    /// Violations detected (over all seeds), by kind.
    pub violations: Vec<String>,
}

/// The `p`-th percentile (0..=100) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * (sorted.len() - 1) as f64).round() as usize;
    sorted.get(rank.min(sorted.len() - 1)).copied()
}

/// Summarises each row.
pub fn summarise(rows: &[&Row], outcomes: &[SeedOutcome]) -> Vec<RowSummary> {
    rows.iter()
        .map(|row| {
            let runs: Vec<&SeedOutcome> = outcomes.iter().filter(|o| o.row == row.index).collect();
            let mut ttv: Vec<f64> = runs
                .iter()
                .flat_map(|o| o.result.metrics.slots.iter())
                .filter_map(|s| s.time_to_verdict_ms)
                .collect();
            ttv.sort_by(f64::total_cmp);
            let decided: Vec<_> = runs
                .iter()
                .flat_map(|o| o.result.metrics.slots.iter())
                .filter(|s| s.verdict.is_some())
                .collect();
            let sessions = if decided.is_empty() {
                0.0
            } else {
                decided.iter().map(|s| f64::from(s.sessions)).sum::<f64>() / decided.len() as f64
            };
            let members: Vec<_> = runs
                .iter()
                .flat_map(|o| o.result.metrics.members.iter())
                .collect();
            let per = |f: &dyn Fn(&crate::world::MemberMetric) -> u64| {
                if members.is_empty() {
                    0.0
                } else {
                    members.iter().map(|m| f(m) as f64).sum::<f64>() / members.len() as f64
                }
            };
            let accusations = || runs.iter().flat_map(|o| o.result.accusations.iter());
            let mut culprits: Vec<u16> = accusations()
                .filter(|a| a.epoch == 0)
                .map(|a| a.culprit)
                .collect();
            culprits.sort_unstable();
            culprits.dedup();
            let mut later: Vec<(u16, u16)> = accusations()
                .filter(|a| a.epoch > 0)
                .map(|a| (a.epoch, a.culprit))
                .collect();
            later.sort_unstable();
            later.dedup();
            let later_culprits = later.into_iter().map(|(e, m)| member_label(e, m)).collect();
            let mut violations: Vec<String> = runs
                .iter()
                .flat_map(|o| o.result.violations.iter().map(|v| format!("{:?}", v.kind)))
                .collect();
            violations.sort();
            violations.dedup();
            RowSummary {
                row: row.index,
                label: row.label.clone(),
                params: row.params.clone(),
                seeds: runs.len(),
                passed: runs.iter().filter(|o| o.passed()).count(),
                share_decided: if runs.is_empty() {
                    0.0
                } else {
                    runs.iter()
                        .map(|o| o.result.metrics.share_decided)
                        .sum::<f64>()
                        / runs.len() as f64
                },
                ttv_p50_ms: percentile(&ttv, 50.0),
                ttv_p95_ms: percentile(&ttv, 95.0),
                ttv_max_ms: ttv.last().copied(),
                sessions_per_slot: sessions,
                bytes_per_member: per(&|m| m.bytes_sent),
                msgs_per_member: per(&|m| m.msgs_sent),
                culprits,
                later_culprits,
                violations,
            }
        })
        .collect()
}

/// A member as named in reports: its index, prefixed with its epoch after the genesis roster's.
fn member_label(epoch: u16, member: u16) -> String {
    if epoch == 0 {
        member.to_string()
    } else {
        format!("e{epoch}:{member}")
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.0}"))
}

fn bytes(b: f64) -> String {
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.2} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{b:.0} B")
    }
}

/// The summary table, one line per row.
pub fn table(summaries: &[RowSummary]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<28} {:>6} {:>8} {:>9} {:>9} {:>9} {:>8} {:>11} {:>10}  violations",
        "row",
        "seeds",
        "passed",
        "decided",
        "ttv p50",
        "ttv p95",
        "sess/slot",
        "sent/member",
        "culprits"
    );
    for s in summaries {
        let label: String = s.label.chars().take(28).collect();
        let culprits = if s.culprits.is_empty() && s.later_culprits.is_empty() {
            "-".into()
        } else {
            s.culprits
                .iter()
                .map(ToString::to_string)
                .chain(s.later_culprits.iter().cloned())
                .collect::<Vec<_>>()
                .join(",")
        };
        let _ = writeln!(
            out,
            "{:<28} {:>6} {:>8} {:>8.1}% {:>7} ms {:>6} ms {:>8.2} {:>11} {:>10}  {}",
            label,
            s.seeds,
            s.passed,
            s.share_decided * 100.0,
            opt(s.ttv_p50_ms),
            opt(s.ttv_p95_ms),
            s.sessions_per_slot,
            bytes(s.bytes_per_member),
            culprits,
            if s.violations.is_empty() {
                "-".into()
            } else {
                s.violations.join(",")
            }
        );
    }
    out
}

/// Writes `runs.json`, `summary.json` and the CSV files into `dir`.
///
/// # Errors
/// File-system errors.
pub fn write_data(
    dir: &Path,
    rows: &[&Row],
    outcomes: &[SeedOutcome],
    summaries: &[RowSummary],
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[derive(Serialize)]
    struct RowOut<'a> {
        index: usize,
        label: &'a str,
        scenario: &'a crate::scenario::Scenario,
    }
    let rows_out: Vec<RowOut<'_>> = rows
        .iter()
        .map(|r| RowOut {
            index: r.index,
            label: &r.label,
            scenario: &r.scenario,
        })
        .collect();
    std::fs::write(dir.join("scenario.json"), pretty(&rows_out)?)?;
    std::fs::write(dir.join("summary.json"), pretty(&summaries)?)?;
    std::fs::write(dir.join("runs.json"), pretty(&outcomes)?)?;

    let mut runs = std::fs::File::create(dir.join("runs.csv"))?;
    writeln!(
        runs,
        "row,label,seed,passed,live,violations,share_decided,ttv_p50_ms,ttv_p95_ms,ttv_max_ms,sessions_per_slot,bytes_per_member,msgs_per_member,culprits,events,virtual_seconds,trace_hash"
    )?;
    for o in outcomes {
        let m = &o.result.metrics;
        let mut ttv: Vec<f64> = m
            .slots
            .iter()
            .filter_map(|s| s.time_to_verdict_ms)
            .collect();
        ttv.sort_by(f64::total_cmp);
        let decided: Vec<_> = m.slots.iter().filter(|s| s.verdict.is_some()).collect();
        let sessions = if decided.is_empty() {
            0.0
        } else {
            decided.iter().map(|s| f64::from(s.sessions)).sum::<f64>() / decided.len() as f64
        };
        let n = m.members.len().max(1) as f64;
        let culprits: Vec<String> = m
            .culprits
            .iter()
            .map(|c| member_label(c.epoch, c.member))
            .collect();
        writeln!(
            runs,
            "{},{},{},{},{},{},{:.4},{},{},{},{:.3},{:.0},{:.1},{},{},{:.3},{}",
            o.row,
            csv(&o.label),
            o.result.seed,
            o.passed(),
            o.result.live,
            csv(&o
                .result
                .violations
                .iter()
                .map(|v| format!("{:?}", v.kind))
                .collect::<Vec<_>>()
                .join(" ")),
            m.share_decided,
            opt_csv(percentile(&ttv, 50.0)),
            opt_csv(percentile(&ttv, 95.0)),
            opt_csv(ttv.last().copied()),
            sessions,
            m.members.iter().map(|x| x.bytes_sent as f64).sum::<f64>() / n,
            m.members.iter().map(|x| x.msgs_sent as f64).sum::<f64>() / n,
            csv(&culprits.join(" ")),
            m.events,
            m.virtual_seconds,
            o.result.trace_hash
        )?;
    }

    let mut slots = std::fs::File::create(dir.join("slots.csv"))?;
    writeln!(
        slots,
        "row,label,seed,period,lab,conduct,verdict,evidence,time_to_verdict_ms,time_to_all_ms,sessions,proposals"
    )?;
    for o in outcomes {
        for s in &o.result.metrics.slots {
            writeln!(
                slots,
                "{},{},{},{},{},{:?},{},{},{},{},{},{}",
                o.row,
                csv(&o.label),
                o.result.seed,
                s.period,
                s.lab,
                s.conduct,
                s.verdict.as_deref().unwrap_or(""),
                s.evidence,
                opt_csv(s.time_to_verdict_ms),
                opt_csv(s.time_to_all_ms),
                s.sessions,
                s.proposals
            )?;
        }
    }

    let mut members = std::fs::File::create(dir.join("members.csv"))?;
    writeln!(
        members,
        "row,label,seed,member,role,region,msgs_sent,bytes_sent,msgs_recv,bytes_recv,engine_calls,crashes"
    )?;
    for o in outcomes {
        for m in &o.result.metrics.members {
            writeln!(
                members,
                "{},{},{},{},{},{},{},{},{},{},{},{}",
                o.row,
                csv(&o.label),
                o.result.seed,
                member_label(m.epoch, m.member),
                m.role,
                csv(&m.region),
                m.msgs_sent,
                m.bytes_sent,
                m.msgs_recv,
                m.bytes_recv,
                m.engine_calls,
                m.crashes
            )?;
        }
    }

    let mut culprits = std::fs::File::create(dir.join("culprits.csv"))?;
    writeln!(culprits, "row,label,seed,member,role,offence,named_by")?;
    for o in outcomes {
        for c in &o.result.metrics.culprits {
            writeln!(
                culprits,
                "{},{},{},{},{},{},{}",
                o.row,
                csv(&o.label),
                o.result.seed,
                member_label(c.epoch, c.member),
                c.role,
                csv(&c.offence),
                c.named_by
            )?;
        }
    }
    Ok(())
}

fn pretty<T: Serialize>(v: &T) -> std::io::Result<String> {
    serde_json::to_string_pretty(v).map_err(std::io::Error::other)
}

fn csv(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn opt_csv(v: Option<f64>) -> String {
    v.map_or_else(String::new, |x| format!("{x:.3}"))
}

type PlotResult = Result<(), Box<dyn std::error::Error>>;

/// Writes the SVG plots into `dir`: `time_to_verdict.svg`, `traffic_per_member.svg`, and (with
/// several rows) `latency_vs_<parameter>.svg`. Returns the files written.
///
/// # Errors
/// File-system or drawing errors.
pub fn write_plots(
    dir: &Path,
    rows: &[&Row],
    outcomes: &[SeedOutcome],
    summaries: &[RowSummary],
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let ttv: Vec<f64> = outcomes
        .iter()
        .flat_map(|o| o.result.metrics.slots.iter())
        .filter_map(|s| s.time_to_verdict_ms)
        .collect();
    if !ttv.is_empty() {
        let path = dir.join("time_to_verdict.svg");
        histogram(&path, &ttv)?;
        written.push(path.display().to_string());
    }
    if let Some(first) = rows.first() {
        let runs: Vec<&SeedOutcome> = outcomes.iter().filter(|o| o.row == first.index).collect();
        if !runs.is_empty() {
            let path = dir.join("traffic_per_member.svg");
            traffic(&path, &runs, &first.label)?;
            written.push(path.display().to_string());
        }
    }
    if summaries.len() > 1 {
        let key = swept_key(rows);
        let name = key
            .as_deref()
            .unwrap_or("row")
            .replace(|c: char| !c.is_ascii_alphanumeric(), "_");
        let path = dir.join(format!("latency_vs_{name}.svg"));
        latency_vs(&path, rows, summaries, key.as_deref())?;
        written.push(path.display().to_string());
    }
    Ok(written)
}

/// The parameter every row overrides, when there is exactly one.
fn swept_key(rows: &[&Row]) -> Option<String> {
    let first = rows.first()?;
    if first.params.len() != 1 {
        return None;
    }
    let key = &first.params[0].0;
    rows.iter()
        .all(|r| r.params.len() == 1 && &r.params[0].0 == key)
        .then(|| key.clone())
}

fn histogram(path: &Path, values: &[f64]) -> PlotResult {
    let max = values.iter().copied().fold(0.0f64, f64::max).max(1.0);
    let min = values
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .min(max);
    let bins = 40usize;
    let width = ((max - min) / bins as f64).max(1e-9);
    let mut counts = vec![0u32; bins];
    for v in values {
        let i = (((v - min) / width) as usize).min(bins - 1);
        counts[i] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(1).max(1);
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Time to verdict after slot close ({} slots)", values.len()),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(min..(min + width * bins as f64), 0u32..(top + top / 10 + 1))?;
    chart
        .configure_mesh()
        .x_desc("ms after the close")
        .y_desc("slots")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()?;
    chart.draw_series(counts.iter().enumerate().map(|(i, c)| {
        let x0 = min + width * i as f64;
        Rectangle::new([(x0, 0), (x0 + width, *c)], BLUE.mix(0.6).filled())
    }))?;
    root.present()?;
    Ok(())
}

fn traffic(path: &Path, runs: &[&SeedOutcome], label: &str) -> PlotResult {
    let Some(first) = runs.first() else {
        return Ok(());
    };
    let n = first.result.metrics.members.len();
    let mut sent = vec![0.0f64; n];
    let mut recv = vec![0.0f64; n];
    for o in runs {
        for m in &o.result.metrics.members {
            let i = usize::from(m.member);
            if i < n {
                sent[i] += m.bytes_sent as f64 / 1e6 / runs.len() as f64;
                recv[i] += m.bytes_recv as f64 / 1e6 / runs.len() as f64;
            }
        }
    }
    let top = sent
        .iter()
        .chain(&recv)
        .copied()
        .fold(0.0f64, f64::max)
        .max(1e-6);
    let root = SVGBackend::new(path, (1000, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Traffic per member ({label}, mean of {} seed(s))",
                runs.len()
            ),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..n as f64, 0f64..top * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("member")
        .y_desc("MB")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()?;
    let roles: Vec<bool> = first
        .result
        .metrics
        .members
        .iter()
        .map(|m| m.role == "honest")
        .collect();
    chart
        .draw_series(sent.iter().enumerate().map(|(i, v)| {
            let color = if roles.get(i).copied().unwrap_or(true) {
                BLUE.mix(0.7)
            } else {
                RED.mix(0.7)
            };
            Rectangle::new(
                [(i as f64 + 0.05, 0.0), (i as f64 + 0.5, *v)],
                color.filled(),
            )
        }))?
        .label("sent (red: Byzantine)")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], BLUE.mix(0.7).filled()));
    chart
        .draw_series(recv.iter().enumerate().map(|(i, v)| {
            Rectangle::new(
                [(i as f64 + 0.5, 0.0), (i as f64 + 0.95, *v)],
                GREEN.mix(0.6).filled(),
            )
        }))?
        .label("received")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], GREEN.mix(0.6).filled()));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn latency_vs(
    path: &Path,
    rows: &[&Row],
    summaries: &[RowSummary],
    key: Option<&str>,
) -> PlotResult {
    let xs: Vec<f64> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            key.and_then(|_| r.params.first())
                .and_then(|(_, v)| v.parse::<f64>().ok())
                .unwrap_or(i as f64)
        })
        .collect();
    let p50: Vec<(f64, f64)> = xs
        .iter()
        .zip(summaries)
        .filter_map(|(x, s)| s.ttv_p50_ms.map(|y| (*x, y)))
        .collect();
    let p95: Vec<(f64, f64)> = xs
        .iter()
        .zip(summaries)
        .filter_map(|(x, s)| s.ttv_p95_ms.map(|y| (*x, y)))
        .collect();
    let xmin = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let xmax = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let pad = if xmax > xmin {
        (xmax - xmin) * 0.05
    } else {
        0.5
    };
    let ymax = p95
        .iter()
        .chain(&p50)
        .map(|(_, y)| *y)
        .fold(0.0f64, f64::max)
        .max(1.0);
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Time to verdict against {}", key.unwrap_or("sweep row")),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d((xmin - pad)..(xmax + pad), 0f64..ymax * 1.1)?;
    chart
        .configure_mesh()
        .x_desc(key.unwrap_or("row"))
        .y_desc("ms after the close")
        .draw()?;
    chart
        .draw_series(LineSeries::new(p50.clone(), BLUE.stroke_width(2)))?
        .label("p50")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], BLUE));
    chart.draw_series(p50.iter().map(|p| Circle::new(*p, 4, BLUE.filled())))?;
    chart
        .draw_series(LineSeries::new(p95.clone(), RED.stroke_width(2)))?
        .label("p95")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], RED));
    chart.draw_series(p95.iter().map(|p| Circle::new(*p, 4, RED.filled())))?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
