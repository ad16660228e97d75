//! Retention of old KeptnAppVersions and KeptnWorkloadVersions (a Portcullis addition to
//! B §3.14, where Keptn keeps every version forever). Pure: which versions to delete.
//!
//! Per app or workload (a *group*), finished versions that are neither current nor the newest
//! are history; the newest `retained` of them are kept and older ones are deleted, oldest first.
//! Unfinished versions, the current version and the newest version are never deleted and do
//! not count against `retained`. `retained == 0` disables deletion altogether.

use std::collections::BTreeSet;

use jiff::Timestamp;
use shared::crd::KeptnState;

/// Default number of finished, superseded versions kept per app and per workload.
pub const DEFAULT_RETAINED: usize = 10;

/// One version as the planner sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// The app or workload the version belongs to, e.g. `<namespace>/<name>`.
    pub group: String,
    pub name: String,
    /// Deletion is preconditioned on it, so a re-created object of the same name survives.
    pub uid: String,
    /// `None` (never the case for a stored object) keeps the version.
    pub created: Option<Timestamp>,
    pub state: KeptnState,
    /// The version its app or workload currently points at.
    pub current: bool,
}

/// Whether a version's lifecycle is over: Succeeded, Failed or Deprecated.
pub fn is_terminal(state: &KeptnState) -> bool {
    matches!(
        state,
        KeptnState::Succeeded | KeptnState::Failed | KeptnState::Deprecated
    )
}

/// The versions to delete, oldest first (creation time, then name), across all groups.
pub fn to_delete(versions: &[Version], retained: usize) -> Vec<&Version> {
    if retained == 0 {
        return Vec::new();
    }
    let mut groups: std::collections::BTreeMap<&str, Vec<&Version>> = Default::default();
    for v in versions {
        groups.entry(&v.group).or_default().push(v);
    }
    let mut doomed = Vec::new();
    for (_, group) in groups {
        // Newest first. A version without a creation time is never deleted.
        let mut dated: Vec<&Version> = group.into_iter().filter(|v| v.created.is_some()).collect();
        dated.sort_by(|a, b| (b.created, &b.name).cmp(&(a.created, &a.name)));
        let history = dated
            .into_iter()
            .skip(1)
            .filter(|v| !v.current && is_terminal(&v.state));
        doomed.extend(history.skip(retained));
    }
    doomed.sort_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));
    doomed
}

/// An app or workload as far as retention cares: which object it is and which of its versions
/// it makes current.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    pub uid: String,
    /// Names of the versions it points at.
    pub current: BTreeSet<String>,
}

/// Whether a group's planned deletions still stand once its owner has been read again from the
/// API right before deleting. The plan was made on cached state; a rollback in between (the
/// owner pointing at an old version again) or a deleted or re-created owner cancels the whole
/// group's deletions for this pass, and the next pass plans afresh.
pub fn still_doomed(planned: &Owner, fresh: Option<&Owner>, doomed: &[&Version]) -> bool {
    let Some(fresh) = fresh else {
        return false;
    };
    fresh.uid == planned.uid
        && fresh.current == planned.current
        && doomed.iter().all(|v| !fresh.current.contains(&v.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(group: &str, name: &str, second: i64, state: KeptnState) -> Version {
        Version {
            group: group.into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            created: Some(Timestamp::from_second(1_700_000_000 + second).unwrap()),
            state,
            current: false,
        }
    }

    /// Versions `<prefix>-1`, `<prefix>-2`, … of `group` in `states`, created a second apart
    /// (version i at second i).
    fn numbered(group: &str, prefix: &str, states: Vec<KeptnState>) -> Vec<Version> {
        (1..)
            .zip(states)
            .map(|(i, state)| v(group, &format!("{prefix}-{i}"), i, state))
            .collect()
    }

    fn names(d: Vec<&Version>) -> Vec<&str> {
        d.into_iter().map(|v| v.name.as_str()).collect()
    }

    use KeptnState::{Deprecated, Failed, Pending, Progressing, Succeeded, Warning};

    #[test]
    fn keeps_the_newest_retained_history_and_deletes_older_oldest_first() {
        let vs = numbered("ns/w", "w", vec![Succeeded; 6]);
        // w-6 is the newest (kept on its own); history w-1..w-5, 2 kept.
        assert_eq!(names(to_delete(&vs, 2)), ["w-1", "w-2", "w-3"]);
        assert_eq!(names(to_delete(&vs, 5)), Vec::<&str>::new());
        assert_eq!(names(to_delete(&vs, 4)), ["w-1"]);
    }

    #[test]
    fn zero_disables_deletion() {
        let vs = numbered("g", "x", vec![Failed; 4]);
        assert!(to_delete(&vs, 0).is_empty());
        assert_eq!(names(to_delete(&vs, 1)), ["x-1", "x-2"]);
    }

    #[test]
    fn current_unfinished_and_newest_are_never_deleted_nor_counted() {
        let states = vec![
            Succeeded,
            Pending,
            Succeeded,
            Progressing,
            Warning,
            Deprecated,
            Failed,
        ];
        let mut vs = numbered("g", "a", states);
        vs[0].current = true;
        // History: a-3, a-6 (a-7 newest, a-1 current, others unfinished).
        assert_eq!(names(to_delete(&vs, 1)), ["a-3"]);
        assert!(to_delete(&vs, 2).is_empty());
        // The newest stays even when finished and not current.
        let one = [v("g", "only", 1, Failed)];
        assert!(to_delete(&one, 1).is_empty());
    }

    #[test]
    fn groups_are_independent_and_output_is_oldest_first() {
        let vs = vec![
            v("ns/b", "b-1", 5, Succeeded),
            v("ns/a", "a-1", 1, Succeeded),
            v("ns/b", "b-2", 6, Succeeded),
            v("ns/a", "a-2", 2, Succeeded),
            v("ns/b", "b-3", 7, Succeeded),
            v("ns/a", "a-3", 3, Succeeded),
            v("other/a", "a-1", 0, Succeeded),
        ];
        assert_eq!(names(to_delete(&vs, 1)), ["a-1", "b-1"]);
        let d = to_delete(&vs, 1);
        assert_eq!(d[0].group, "ns/a");
    }

    #[test]
    fn ties_break_by_name_and_missing_times_stay() {
        let mut vs = vec![
            v("g", "c", 1, Succeeded),
            v("g", "a", 1, Succeeded),
            v("g", "b", 1, Succeeded),
            v("g", "z", 2, Succeeded),
            v("g", "undated", 0, Succeeded),
        ];
        vs[4].created = None;
        // z is the newest; history by (time, name) descending: c, b, a; undated stays.
        assert_eq!(names(to_delete(&vs, 2)), ["a"]);
        assert_eq!(names(to_delete(&vs, 1)), ["a", "b"]);
    }

    #[test]
    fn creation_time_not_name_decides_oldest() {
        // Names sort against creation order: z-* were created first, a-* last.
        let vs = vec![
            v("g", "a-new", 30, Succeeded),
            v("g", "b-newer", 31, Succeeded),
            v("g", "c-newest", 32, Succeeded),
            v("g", "y-old", 11, Succeeded),
            v("g", "z-oldest", 10, Failed),
        ];
        // c-newest is kept as the newest; history newest first: b-newer, a-new, y-old, z-oldest.
        assert_eq!(names(to_delete(&vs, 2)), ["z-oldest", "y-old"]);
        assert_eq!(names(to_delete(&vs, 3)), ["z-oldest"]);
        // And across groups, output is by creation time, not by name or group.
        let mut two = vs.clone();
        two.push(v("h", "a-1", 1, Succeeded));
        two.push(v("h", "a-2", 20, Succeeded));
        two.push(v("h", "a-3", 40, Succeeded));
        assert_eq!(
            names(to_delete(&two, 1)),
            ["a-1", "z-oldest", "y-old", "a-new"]
        );
    }

    fn owner(uid: &str, current: &[&str]) -> Owner {
        Owner {
            uid: uid.into(),
            current: current.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn deletions_stand_only_while_the_owner_is_unchanged() {
        let old = v("ns/w", "w-1", 1, Succeeded);
        let doomed = [&old];
        let planned = owner("u", &["w-3"]);
        assert!(still_doomed(&planned, Some(&owner("u", &["w-3"])), &doomed));
        // Rolled back to the doomed version between plan and delete.
        assert!(!still_doomed(
            &planned,
            Some(&owner("u", &["w-1"])),
            &doomed
        ));
        // Pointing somewhere else (or additionally somewhere) also cancels.
        assert!(!still_doomed(
            &planned,
            Some(&owner("u", &["w-3", "w-4"])),
            &doomed
        ));
        assert!(!still_doomed(
            &planned,
            Some(&owner("u", &["w-2"])),
            &doomed
        ));
        // Gone, or deleted and re-created under the same name.
        assert!(!still_doomed(&planned, None, &doomed));
        assert!(!still_doomed(
            &planned,
            Some(&owner("other", &["w-3"])),
            &doomed
        ));
        // A plan that somehow dooms a current version never stands.
        let current = v("ns/w", "w-3", 3, Succeeded);
        assert!(!still_doomed(&planned, Some(&planned.clone()), &[&current]));
    }
}
