//! Process trees: who forks whom, and which sessions and process groups are recreated.
//!
//! Linux gives no way to change a process's parent, and joins sessions and process
//! groups only under rules (`setsid` makes the caller the leader of a new session;
//! `setpgid` moves the caller into a group *of its own session* that exists, or makes it
//! the leader of a new one). So the tree is rebuilt by forking every process from its
//! restored parent, and the ids are recreated in three steps:
//!
//! 1. right after a process is forked, before it forks its own children, it calls
//!    `setsid` if it led its session (its children then inherit the session);
//! 2. once every process exists, every group leader that is not a session leader calls
//!    `setpgid(0, 0)`;
//! 3. then every member of a group whose leader is in the image calls
//!    `setpgid(0, leader)` with the leader's new pid.
//!
//! [`plan_tree`] decides all of this from the image alone, before anything is created,
//! and refuses the trees these rules cannot rebuild.

use crate::plan::TaskPlan;
use std::collections::HashMap;

/// What a process does about its process group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// Keeps the group it has after fork (and `setsid`): its parent's, or its own session's.
    Inherit,
    /// Leads a group of its own: `setpgid(0, 0)` (step 2).
    Own,
    /// Joins the group led by the task at this index: `setpgid(0, leader)` (step 3).
    Join(usize),
}

/// How one task of the image is recreated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Index of the task it is forked from; `None`: forked by the restorer (a root).
    pub parent: Option<usize>,
    /// Calls `setsid` right after it is forked.
    pub setsid: bool,
    /// Its process group.
    pub group: Group,
    /// Index of the task whose pid is its session id once restored (`None`: a session
    /// outside the image, the restorer's).
    pub session_leader: Option<usize>,
}

/// The decisions for a whole image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TreePlan {
    /// One node per task, in image order.
    pub nodes: Vec<Node>,
    /// Ids that cannot be kept exactly (a root's session or group outside the image
    /// that differs from the restorer's), one line each.
    pub warnings: Vec<String>,
}

/// Decide how to rebuild the tree of `tasks` (image order). `ours` is the restorer's
/// `(session id, process group id)`: a root whose session or group is outside the image
/// joins these, with a warning when they differ from the captured ones.
pub fn plan_tree(tasks: &[TaskPlan], ours: (i32, i32)) -> Result<TreePlan, String> {
    let mut index: HashMap<i32, usize> = HashMap::new();
    for (i, t) in tasks.iter().enumerate() {
        if t.task.pid <= 0 {
            return Err(format!("task {i} has pid {}", t.task.pid));
        }
        if index.insert(t.task.pid, i).is_some() {
            return Err(format!("pid {} appears twice", t.task.pid));
        }
    }
    let mut out = TreePlan::default();
    for (i, t) in tasks.iter().enumerate() {
        let (pid, sid, pgid) = (t.task.pid, t.task.sid, t.task.pgid);
        let parent = match index.get(&t.task.ppid) {
            Some(&p) if t.task.ppid != 0 && p < i => Some(p),
            Some(&p) if t.task.ppid != 0 => {
                return Err(format!(
                    "pid {pid} comes before its parent {} in the image (task {p}): parents must come first",
                    t.task.ppid
                ))
            }
            _ => None,
        };
        if t.task.exit_state != 0 {
            match parent {
                None => {
                    return Err(format!(
                    "pid {pid} is a zombie whose parent is not in the image: nobody would reap it"
                ))
                }
                Some(p) if tasks[p].task.exit_state != 0 => {
                    return Err(format!(
                        "pid {pid} is the child of zombie {}: a zombie has no children",
                        tasks[p].task.pid
                    ))
                }
                _ => {}
            }
        }
        if parent.is_none() {
            if let Some(sig) = t
                .task
                .records
                .pdeath_signal
                .map(|p| p.sig)
                .filter(|&s| s != 0)
            {
                return Err(format!(
                    "pid {pid} has parent-death signal {sig} (PR_SET_PDEATHSIG) but its parent is not in the image: ckpt-restore, its parent once restored, exits at once and the signal would fire"
                ));
            }
        }
        // Session.
        let setsid = sid == pid;
        let session_leader = if setsid {
            if pgid != pid {
                return Err(format!(
                    "pid {pid} leads session {sid} but is in process group {pgid}: a session leader always leads its group"
                ));
            }
            Some(i)
        } else if let Some(p) = parent {
            if tasks[p].task.sid != sid {
                return Err(format!(
                    "pid {pid} is in session {sid}, its parent {} in session {}, and {pid} does not lead its session: a process can only be in its parent's session or a new one of its own",
                    tasks[p].task.pid, tasks[p].task.sid
                ));
            }
            out.nodes[p].session_leader
        } else {
            if sid != ours.0 {
                out.warnings.push(format!(
                    "pid {pid} was in session {sid}, which is not in the image: it joins ckpt-restore's session {}",
                    ours.0
                ));
            }
            None
        };
        // Process group.
        let group = if pgid == pid {
            if setsid {
                Group::Inherit
            } else {
                Group::Own
            }
        } else if let Some(&l) = index.get(&pgid) {
            let leader = &tasks[l].task;
            if leader.pgid != pgid {
                return Err(format!(
                    "pid {pid} is in process group {pgid}, but pid {pgid} of the image is in group {}",
                    leader.pgid
                ));
            }
            if leader.sid != sid {
                return Err(format!(
                    "pid {pid} (session {sid}) is in process group {pgid}, whose leader is in session {}: a group never spans sessions",
                    leader.sid
                ));
            }
            Group::Join(l)
        } else if let Some(p) = parent {
            if tasks[p].task.pgid != pgid {
                return Err(format!(
                    "pid {pid} is in process group {pgid}, whose leader is not in the image and which is not its parent's ({}): it cannot be recreated",
                    tasks[p].task.pgid
                ));
            }
            Group::Inherit
        } else {
            if pgid != ours.1 {
                out.warnings.push(format!(
                    "pid {pid} was in process group {pgid}, whose leader is not in the image: it joins ckpt-restore's group {}",
                    ours.1
                ));
            }
            Group::Inherit
        };
        out.nodes.push(Node {
            parent,
            setsid,
            group,
            session_leader,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ckpt_format::Task;

    fn t(pid: i32, ppid: i32, pgid: i32, sid: i32) -> TaskPlan {
        TaskPlan {
            task: Task {
                pid,
                tgid: pid,
                ppid,
                pgid,
                sid,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn session_leader_with_a_group_of_two_below() {
        // 100 leads session and group; 101 leads its own group; 102 is in 101's group.
        let p = plan_tree(
            &[
                t(100, 0, 100, 100),
                t(101, 100, 101, 100),
                t(102, 101, 101, 100),
            ],
            (1, 1),
        )
        .unwrap();
        assert!(p.warnings.is_empty());
        assert_eq!(
            p.nodes,
            vec![
                Node {
                    parent: None,
                    setsid: true,
                    group: Group::Inherit,
                    session_leader: Some(0)
                },
                Node {
                    parent: Some(0),
                    setsid: false,
                    group: Group::Own,
                    session_leader: Some(0)
                },
                Node {
                    parent: Some(1),
                    setsid: false,
                    group: Group::Join(1),
                    session_leader: Some(0)
                },
            ]
        );
    }

    #[test]
    fn group_led_by_a_later_sibling_is_joined() {
        // 11 is in the group of its younger sibling 12.
        let p = plan_tree(
            &[t(10, 0, 10, 10), t(11, 10, 12, 10), t(12, 10, 12, 10)],
            (1, 1),
        )
        .unwrap();
        assert_eq!(p.nodes[1].group, Group::Join(2));
        assert_eq!(p.nodes[2].group, Group::Own);
    }

    #[test]
    fn outside_session_and_group_are_warned_not_refused() {
        let p = plan_tree(&[t(10, 0, 7, 5), t(11, 10, 7, 5)], (1, 2)).unwrap();
        assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
        assert!(p.warnings[0].contains("session 5"));
        assert!(p.warnings[1].contains("process group 7"));
        assert_eq!(p.nodes[1].group, Group::Inherit);
        assert_eq!(p.nodes[1].session_leader, None);
        // The same ids as ours: exact, no warning.
        assert!(plan_tree(&[t(10, 0, 2, 1)], (1, 2))
            .unwrap()
            .warnings
            .is_empty());
    }

    #[test]
    fn impossible_trees_are_refused_with_the_reason() {
        let e = plan_tree(&[t(11, 10, 11, 10), t(10, 0, 10, 10)], (1, 1)).unwrap_err();
        assert!(e.contains("before its parent"), "{e}");
        let e = plan_tree(&[t(10, 0, 10, 10), t(11, 10, 11, 9)], (1, 1)).unwrap_err();
        assert!(e.contains("session 9"), "{e}");
        let e = plan_tree(&[t(10, 0, 10, 10), t(11, 10, 99, 10)], (1, 1)).unwrap_err();
        assert!(e.contains("not in the image"), "{e}");
        let e = plan_tree(&[t(10, 0, 3, 10)], (1, 1)).unwrap_err();
        assert!(e.contains("leads session"), "{e}");
        let e = plan_tree(&[t(10, 0, 10, 10), t(10, 0, 10, 10)], (1, 1)).unwrap_err();
        assert!(e.contains("twice"), "{e}");
        let e = plan_tree(
            &[t(10, 0, 10, 10), t(11, 10, 11, 11), t(12, 11, 10, 11)],
            (1, 1),
        )
        .unwrap_err();
        assert!(
            e.contains("spans sessions") || e.contains("never spans"),
            "{e}"
        );
    }
}
