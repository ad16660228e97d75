//! Rendering: tables for people, JSON and YAML for scripts, colour only where it helps.

use std::io::IsTerminal;

use serde::Serialize;

use crate::cli::{Color, Format, Global};

/// How to print.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub format: Format,
    pub color: bool,
}

impl Style {
    /// From the flags: colour on `always`, or on `auto` when stdout is a terminal and `NO_COLOR`
    /// is unset.
    pub fn from_global(global: &Global) -> Style {
        let color = match global.color {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => {
                std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        };
        Style {
            format: global.output,
            color,
        }
    }

    /// `text` in red (failures), when colouring.
    pub fn bad(&self, text: &str) -> String {
        self.paint("31", text)
    }

    /// `text` in green (successes), when colouring.
    pub fn good(&self, text: &str) -> String {
        self.paint("32", text)
    }

    /// `text` in yellow (pending, waiting), when colouring.
    pub fn pending(&self, text: &str) -> String {
        self.paint("33", text)
    }

    /// `text` in bold (headings), when colouring.
    pub fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\u{1b}[{code}m{text}\u{1b}[0m")
        } else {
            text.to_owned()
        }
    }

    /// A state word (`Succeeded`, `Failed`, `Progressing`, …) coloured by its meaning.
    pub fn state(&self, state: &str) -> String {
        match state {
            "Succeeded" | "Completed" | "Released" | "Ready" => self.good(state),
            "Failed" | "Deprecated" | "Error" | "Held" => self.bad(state),
            _ => self.pending(state),
        }
    }
}

/// `value` as JSON or YAML, per `format` (`None` for tables: the caller draws those).
pub fn serialized<T: Serialize>(format: Format, value: &T) -> anyhow::Result<Option<String>> {
    Ok(match format {
        Format::Table => None,
        Format::Json => Some(serde_json::to_string_pretty(value)? + "\n"),
        Format::Yaml => Some(serde_yaml::to_string(value)?),
    })
}

/// Columns aligned on the widest cell; ANSI colour codes do not count towards widths.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let width = |s: &str| visible_len(s);
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(width(cell));
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let last = cells.len().saturating_sub(1);
        for (i, cell) in cells.into_iter().enumerate() {
            out.push_str(cell);
            if i < last {
                let pad = widths
                    .get(i)
                    .copied()
                    .unwrap_or(0)
                    .saturating_sub(width(cell));
                out.push_str(&" ".repeat(pad + 3));
            }
        }
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for row in rows {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

/// Length without ANSI escape sequences.
fn visible_len(s: &str) -> usize {
    let mut n = 0;
    let mut escape = false;
    for c in s.chars() {
        match (escape, c) {
            (false, '\u{1b}') => escape = true,
            (true, 'm') => escape = false,
            (true, _) => {}
            (false, _) => n += 1,
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_on_visible_widths() {
        let style = Style {
            format: Format::Table,
            color: true,
        };
        let t = table(
            &["NAME", "STATUS"],
            &[
                vec!["shop".into(), style.good("Succeeded")],
                vec!["cart-service".into(), style.bad("Failed")],
            ],
        );
        let plain: String = t
            .replace("\u{1b}[32m", "")
            .replace("\u{1b}[31m", "")
            .replace("\u{1b}[0m", "");
        assert_eq!(
            plain,
            "NAME           STATUS\nshop           Succeeded\ncart-service   Failed\n"
        );
    }
}
