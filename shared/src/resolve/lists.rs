//! Task/evaluation lists (A17) and the metadata map (B §1.8).

use std::collections::BTreeMap;

/// A17: split on `,` and trim each item. Items that are empty after trimming (`a,,b`, a trailing
/// comma) are dropped: Keptn would look for a definition named `""` (or `" "`) and wait for it
/// forever, which no user intends.
pub fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// B §1.8: split on `,`, then each item on `=`; items without exactly two parts are ignored and a
/// repeated key keeps its last value. Nothing is trimmed (A17 covers only the task and evaluation
/// lists), so `a=1, b=2` yields the key `" b"` as in Keptn.
pub fn parse_metadata(value: &str) -> BTreeMap<String, String> {
    value
        .split(',')
        .filter_map(|item| {
            let mut parts = item.split('=');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(key), Some(val), None) => Some((key.to_owned(), val.to_owned())),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a17_list_table() {
        let rows: [(&str, &str, &[&str]); 7] = [
            ("a17_single", "hello", &["hello"]),
            ("a17_split_on_comma", "a,b,c", &["a", "b", "c"]),
            ("a17_items_trimmed", " a , b\t,c ", &["a", "b", "c"]),
            ("a17_empty_items_dropped", "a,,b,", &["a", "b"]),
            ("a17_blank_items_dropped", "a, ,b", &["a", "b"]),
            ("a17_only_separators_gives_empty", " , ", &[]),
            ("a17_inner_spaces_kept", "my task,b", &["my task", "b"]),
        ];
        for (rule, value, want) in rows {
            assert_eq!(split_list(value), want, "{rule}");
        }
    }

    type Pairs = &'static [(&'static str, &'static str)];

    #[test]
    fn metadata_table() {
        let rows: [(&str, &str, Pairs); 7] = [
            ("metadata_pairs", "a=1,b=2", &[("a", "1"), ("b", "2")]),
            (
                "metadata_no_equals_ignored",
                "a=1,flag,b=2",
                &[("a", "1"), ("b", "2")],
            ),
            ("metadata_two_equals_ignored", "a=1=2,b=2", &[("b", "2")]),
            (
                "metadata_not_trimmed",
                "a=1, b=2",
                &[("a", "1"), (" b", "2")],
            ),
            (
                "metadata_empty_parts_kept",
                "=v,k=",
                &[("", "v"), ("k", "")],
            ),
            ("metadata_last_duplicate_wins", "a=1,a=2", &[("a", "2")]),
            ("metadata_empty_value", "", &[]),
        ];
        for (rule, value, want) in rows {
            let want: BTreeMap<String, String> = want
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(parse_metadata(value), want, "{rule}");
        }
    }
}
