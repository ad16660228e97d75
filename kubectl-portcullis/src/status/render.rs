//! `status` as tables, coloured by [`Style`]. Pure: a [`StatusReport`] in, text out.

use crate::output::{Style, table};

use super::report::{AppReport, PhaseReport, StatusReport, VersionReport};

/// Shown where a value is unknown.
const NONE: &str = "-";

/// The whole report; `scope` names what was asked for when nothing was found.
pub fn render(report: &StatusReport, style: &Style, scope: &str) -> String {
    if report.apps.is_empty() {
        return format!("No KeptnApps found {scope}.\n");
    }
    report
        .apps
        .iter()
        .map(|app| render_app(app, style))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `text` with every line indented by two spaces.
fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

fn render_app(app: &AppReport, style: &Style) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{} {}/{}   version {}   revision {}\n",
        style.bold("App"),
        app.namespace,
        style.bold(&app.name),
        app.version,
        app.revision
    ));
    match &app.app_version {
        None => out.push_str(&format!(
            "  KeptnAppVersion: {} (not created yet)\n",
            style.pending("none")
        )),
        Some(kav) => {
            out.push_str(&format!("  KeptnAppVersion {}\n", version_line(kav, style)));
            out.push_str(&indent(&phase_table(&kav.phases, style)));
        }
    }
    out.push('\n');
    out.push_str(&style.bold("Workloads"));
    out.push('\n');
    if app.workloads.is_empty() {
        out.push_str("  none\n");
    } else {
        let rows: Vec<Vec<String>> = app
            .workloads
            .iter()
            .map(|w| match &w.workload_version {
                Some(kwv) => vec![
                    w.workload.clone(),
                    w.version.clone(),
                    kwv.name.clone(),
                    phase_or_waiting(kwv),
                    style.state(&kwv.status),
                    kwv.duration.clone().unwrap_or_else(|| NONE.into()),
                ],
                None => vec![
                    w.workload.clone(),
                    w.version.clone(),
                    w.workload_version_name.clone(),
                    NONE.into(),
                    style.pending("NotCreated"),
                    NONE.into(),
                ],
            })
            .collect();
        out.push_str(&indent(&table(
            &[
                "WORKLOAD",
                "VERSION",
                "KEPTNWORKLOADVERSION",
                "PHASE",
                "STATUS",
                "DURATION",
            ],
            &rows,
        )));
        for kwv in app
            .workloads
            .iter()
            .filter_map(|w| w.workload_version.as_ref())
        {
            out.push_str(&format!(
                "  KeptnWorkloadVersion {}\n",
                version_line(kwv, style)
            ));
            out.push_str(&indent(&indent(&phase_table(&kwv.phases, style))));
        }
    }
    out.push('\n');
    out.push_str(&style.bold("Tasks"));
    out.push('\n');
    if app.tasks.is_empty() {
        out.push_str("  none\n");
    } else {
        let rows: Vec<Vec<String>> = app
            .tasks
            .iter()
            .map(|t| {
                vec![
                    t.owner.clone(),
                    t.name.clone(),
                    t.definition.clone(),
                    t.check_type.clone(),
                    style.state(&t.status),
                    or_none(&t.job_name),
                    or_none(&t.reason),
                ]
            })
            .collect();
        out.push_str(&indent(&table(
            &[
                "OWNER",
                "TASK",
                "DEFINITION",
                "TYPE",
                "STATUS",
                "JOB",
                "REASON",
            ],
            &rows,
        )));
    }
    out.push('\n');
    out.push_str(&style.bold("Evaluations"));
    out.push('\n');
    if app.evaluations.is_empty() {
        out.push_str("  none\n");
    } else {
        let mut rows: Vec<Vec<String>> = Vec::new();
        for e in &app.evaluations {
            let head = vec![
                e.owner.clone(),
                e.name.clone(),
                e.definition.clone(),
                e.check_type.clone(),
                style.state(&e.status),
                format!("{}/{}", e.retry_count, e.retries),
            ];
            if e.objectives.is_empty() {
                rows.push([head.clone(), vec![NONE.into(), NONE.into(), NONE.into()]].concat());
            }
            for (i, o) in e.objectives.iter().enumerate() {
                let lead = if i == 0 {
                    head.clone()
                } else {
                    vec![String::new(); head.len()]
                };
                let value = if o.value.is_empty() {
                    NONE.to_owned()
                } else {
                    o.value.clone()
                };
                let value = match o.status.as_str() {
                    "Failed" => style.bad(&value),
                    "Succeeded" => style.good(&value),
                    _ => value,
                };
                rows.push(
                    [
                        lead,
                        vec![
                            o.metric.clone(),
                            value,
                            o.target.clone().unwrap_or_else(|| NONE.into()),
                        ],
                    ]
                    .concat(),
                );
            }
        }
        out.push_str(&indent(&table(
            &[
                "OWNER",
                "EVALUATION",
                "DEFINITION",
                "TYPE",
                "STATUS",
                "ATTEMPTS",
                "METRIC",
                "VALUE",
                "TARGET",
            ],
            &rows,
        )));
    }
    out.push('\n');
    out.push_str(&style.bold("Gated pods"));
    out.push('\n');
    if app.gated_pods.is_empty() {
        out.push_str("  none\n");
    } else {
        let rows: Vec<Vec<String>> = app
            .gated_pods
            .iter()
            .map(|p| {
                vec![
                    p.name.clone(),
                    p.workload_version.clone(),
                    p.age.clone().unwrap_or_else(|| NONE.into()),
                ]
            })
            .collect();
        out.push_str(&indent(&table(
            &["POD", "KEPTNWORKLOADVERSION", "AGE"],
            &rows,
        )));
    }
    out
}

/// `name   Status   phase P   took D` of a version.
fn version_line(v: &VersionReport, style: &Style) -> String {
    let mut line = format!(
        "{}   {}   phase {}",
        style.bold(&v.name),
        style.state(&v.status),
        phase_or_waiting(v)
    );
    if let Some(d) = &v.duration {
        let verb = if v.end_time.is_some() {
            "took"
        } else {
            "running for"
        };
        line.push_str(&format!("   {verb} {d}"));
    }
    line
}

fn phase_or_waiting(v: &VersionReport) -> String {
    if v.current_phase.is_empty() {
        "(not started)".to_owned()
    } else {
        v.current_phase.clone()
    }
}

fn phase_table(phases: &[PhaseReport], style: &Style) -> String {
    let rows: Vec<Vec<String>> = phases
        .iter()
        .map(|p| {
            let marker = if p.current { "> " } else { "  " };
            let duration = match (&p.duration, p.running) {
                (Some(d), true) => format!("{d} (running)"),
                (Some(d), false) => d.clone(),
                (None, _) => NONE.to_owned(),
            };
            let checks = match p.checks {
                None => NONE.to_owned(),
                Some(n) if p.failed_checks > 0 => {
                    format!(
                        "{n} ({})",
                        style.bad(&format!("{} failed", p.failed_checks))
                    )
                }
                Some(n) => n.to_string(),
            };
            vec![
                format!("{marker}{}", p.phase),
                style.state(&p.status),
                checks,
                duration,
            ]
        })
        .collect();
    table(&["  PHASE", "STATUS", "CHECKS", "DURATION"], &rows)
}

fn or_none(s: &str) -> String {
    if s.is_empty() {
        NONE.to_owned()
    } else {
        s.to_owned()
    }
}
