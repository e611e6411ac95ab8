//! Clusterset policies as pure functions: from the healthy clusters of a
//! Service and its annotations, which clusters answer (design.md §2). No
//! clock, no randomness of their own, no I/O, no bytes: each policy is a
//! table test. Clusters are indexes into the clusterset's members, which
//! are in config order.

use crate::config::{AllDown, ClustersetPolicy};

/// Everything a policy decides from.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub policy: ClustersetPolicy,
    /// Healthy clusters, ascending (config order); never empty.
    pub healthy: &'a [usize],
    /// The cluster this replica runs in (`clusterset.local`).
    pub local: Option<usize>,
    /// `crossdns.io/failover-order`, resolved to clusters; the rest follow
    /// in config order.
    pub order: &'a [usize],
    /// `crossdns.io/weights`, resolved; empty means equal weights, and a
    /// cluster missing from a non-empty list weighs 0.
    pub weights: &'a [(usize, u32)],
    /// A random number for `weighted` (any value: reduced modulo the total).
    pub draw: u64,
}

/// The clusters that answer, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub clusters: Vec<usize>,
    /// The preferred cluster was not healthy and others answer instead.
    pub failover: bool,
    /// Rotate the records per query (`round-robin`).
    pub rotate: bool,
}

impl Selection {
    fn of(clusters: Vec<usize>) -> Self {
        Self {
            clusters,
            failover: false,
            rotate: false,
        }
    }
}

/// Picks the clusters that answer among `input.healthy`.
pub fn choose(input: &Input<'_>) -> Selection {
    let healthy = input.healthy;
    match input.policy {
        // The local cluster while healthy, else every healthy other.
        ClustersetPolicy::LocalFirst => match input.local {
            Some(l) if healthy.contains(&l) => Selection::of(vec![l]),
            Some(_) => Selection {
                failover: true,
                ..Selection::of(healthy.to_vec())
            },
            None => Selection::of(healthy.to_vec()),
        },
        // The first healthy cluster in the annotation's order, then config order.
        ClustersetPolicy::Failover => {
            let rest = (0..=healthy.iter().copied().max().unwrap_or(0))
                .filter(|i| !input.order.contains(i));
            let mut order = input.order.iter().copied().chain(rest);
            let first = order.clone().next();
            let pick = order
                .find(|i| healthy.contains(i))
                .or_else(|| healthy.first().copied());
            Selection {
                failover: pick.is_some() && first != pick,
                ..Selection::of(pick.into_iter().collect())
            }
        }
        ClustersetPolicy::RoundRobin => Selection {
            rotate: true,
            ..Selection::of(healthy.to_vec())
        },
        // One cluster per answer, drawn by weight, so a caching resolver
        // that reorders records cannot undo the split.
        ClustersetPolicy::Weighted => {
            let weight = |i: usize| -> u64 {
                if input.weights.is_empty() {
                    1
                } else {
                    input
                        .weights
                        .iter()
                        .find(|(c, _)| *c == i)
                        .map_or(0, |(_, w)| u64::from(*w))
                }
            };
            let total: u64 = healthy.iter().map(|i| weight(*i)).sum();
            if total == 0 {
                return Selection::of(healthy.to_vec());
            }
            let mut ticket = input.draw % total;
            for &i in healthy {
                let w = weight(i);
                if ticket < w {
                    return Selection::of(vec![i]);
                }
                ticket -= w;
            }
            Selection::of(healthy.to_vec())
        }
    }
}

/// What a query gets when no cluster is healthy for its Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fallback {
    Servfail,
    Nxdomain,
    /// The clusters that were healthy last (answered with a short TTL).
    Clusters(Vec<usize>),
}

/// `all_down`: from the mode and the clusters healthy last, if known.
pub fn all_down(mode: AllDown, last_healthy: Option<&[usize]>) -> Fallback {
    match mode {
        AllDown::Servfail => Fallback::Servfail,
        AllDown::Nxdomain => Fallback::Nxdomain,
        AllDown::LastHealthy => {
            last_healthy.map_or(Fallback::Servfail, |l| Fallback::Clusters(l.to_vec()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ClustersetPolicy::{Failover, LocalFirst, RoundRobin, Weighted};

    fn input(policy: ClustersetPolicy, healthy: &[usize]) -> Input<'_> {
        Input {
            policy,
            healthy,
            local: None,
            order: &[],
            weights: &[],
            draw: 0,
        }
    }

    fn sel(clusters: &[usize], failover: bool, rotate: bool) -> Selection {
        Selection {
            clusters: clusters.to_vec(),
            failover,
            rotate,
        }
    }

    #[test]
    fn every_policy_picks_per_its_table() {
        let order_1_0 = [1, 0];
        let w_3_1 = [(0, 3), (1, 1)];
        let w_only_2 = [(2, 5)];
        #[rustfmt::skip]
        let rows: Vec<(&str, Input<'_>, Selection)> = vec![
            ("local-first, local healthy", Input { local: Some(1), ..input(LocalFirst, &[0, 1, 2]) }, sel(&[1], false, false)),
            ("local-first, local down: the others", Input { local: Some(1), ..input(LocalFirst, &[0, 2]) }, sel(&[0, 2], true, false)),
            ("local-first, no local: all", input(LocalFirst, &[0, 2]), sel(&[0, 2], false, false)),
            ("failover, config order", input(Failover, &[0, 1]), sel(&[0], false, false)),
            ("failover, first down", input(Failover, &[1, 2]), sel(&[1], true, false)),
            ("failover, annotation order", Input { order: &order_1_0, ..input(Failover, &[0, 1]) }, sel(&[1], false, false)),
            ("failover, annotation's first down", Input { order: &order_1_0, ..input(Failover, &[0, 2]) }, sel(&[0], true, false)),
            ("failover, unlisted clusters after the listed", Input { order: &order_1_0, ..input(Failover, &[2]) }, sel(&[2], true, false)),
            ("round-robin: every healthy, rotated", input(RoundRobin, &[0, 1, 2]), sel(&[0, 1, 2], false, true)),
            ("weighted, equal, draw 1 of 2", Input { draw: 1, ..input(Weighted, &[0, 1]) }, sel(&[1], false, false)),
            ("weighted 3:1, draw 2", Input { weights: &w_3_1, draw: 2, ..input(Weighted, &[0, 1]) }, sel(&[0], false, false)),
            ("weighted 3:1, draw 3", Input { weights: &w_3_1, draw: 3, ..input(Weighted, &[0, 1]) }, sel(&[1], false, false)),
            ("weighted, draw wraps modulo the total", Input { weights: &w_3_1, draw: 7, ..input(Weighted, &[0, 1]) }, sel(&[1], false, false)),
            ("weighted, heavy cluster down", Input { weights: &w_3_1, draw: 0, ..input(Weighted, &[1]) }, sel(&[1], false, false)),
            ("weighted, all healthy weigh 0: all", Input { weights: &w_only_2, ..input(Weighted, &[0, 1]) }, sel(&[0, 1], false, false)),
        ];
        for (what, input, want) in rows {
            assert_eq!(choose(&input), want, "{what}");
        }
    }

    #[test]
    fn weighted_draws_split_by_weight() {
        let w = [(0, 3), (1, 1)];
        let mut hits = [0usize; 2];
        for draw in 0..400 {
            let s = choose(&Input {
                weights: &w,
                draw,
                ..input(Weighted, &[0, 1])
            });
            hits[s.clusters[0]] += 1;
        }
        assert_eq!(hits, [300, 100]);
    }

    #[test]
    fn all_down_follows_its_mode() {
        assert_eq!(all_down(AllDown::Servfail, Some(&[0])), Fallback::Servfail);
        assert_eq!(all_down(AllDown::Nxdomain, Some(&[0])), Fallback::Nxdomain);
        assert_eq!(
            all_down(AllDown::LastHealthy, Some(&[0, 2])),
            Fallback::Clusters(vec![0, 2])
        );
        assert_eq!(all_down(AllDown::LastHealthy, None), Fallback::Servfail);
    }
}
