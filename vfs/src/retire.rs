//! The retirement walk (format 4, docs/format-4.md, "The step, its I/O, and
//! when things are freed", step 2): which items the commits a step retires
//! leave dead. A pure function of the maps it is given; `reclaim.rs` reads
//! the log for it and turns what it finds into free-list ranges.
//!
//! Items are named as map entries name them: a frame by its offset (a
//! multiple of 8), a patch by its tagged offset (`patch::is_patch`), a
//! patch's base by the image's offset. Offset 0 names no item (a zero page).
//!
//! # Invariants
//! 1. For retired commits `(Vo, Vo']`, an item is reported dead only if
//!    some version in `[Vo, Vo')` reaches it (a page's slot, or the base of
//!    a page's patch), `Vo'` does not (neither its slot for that page nor
//!    that slot's base), and `kept` does not hold it. `kept` is the caller's
//!    account of everything else that must stay: the items (and patch
//!    bases) that entries of kept commits after `Vo'` name — reverts
//!    included — and what the control state names. Reporting fewer items
//!    is always safe; reporting one more is the bug this file exists to
//!    avoid (`tests`: exactly the oracle's set, no more, no fewer).
//! 2. Items belong to one page: a map entry of page `p` names an item
//!    written for `p` (or, for a revert, `p`'s own older item), and a
//!    patch's base is an image of the same page. The walk relies on it:
//!    it compares a candidate with `Vo'`'s slot of the same page only.
//! 3. Cost: one lookup in `before` per page the retired commits change, a
//!    `base_of` per patch met, memory the size of those commits' entries.
//!    Nothing is proportional to the database.

use std::collections::{HashMap, HashSet};

use crate::patch;

/// The items dead once `(Vo, Vo']` is retired, sorted, each once.
///
/// * `before(p)`: `Vo`'s slot for page `p` (0 or None: no item);
/// * `retired`: the entries `(p, slot)` of each commit of `(Vo, Vo']`, in
///   commit order (a checkpoint: the pages whose slot its tree changed);
/// * `base_of(slot)`: the base image a patch slot names (None: unknown,
///   and its base is then never reported);
/// * `kept(item)`: true for an item something else still needs (invariant
///   1).
pub fn dead_items(
    before: &dyn Fn(u32) -> Option<u64>,
    retired: &[Vec<(u32, u64)>],
    base_of: &dyn Fn(u64) -> Option<u64>,
    kept: &dyn Fn(u64) -> bool,
) -> Vec<u64> {
    let patch_on = |s: u64, b: u64| patch::is_patch(s) && base_of(s) == Some(b);
    // The slot of each page changed so far: Vo's map plus the entries since.
    let mut now: HashMap<u32, u64> = HashMap::new();
    let mut candidates: Vec<(u32, u64)> = Vec::new();
    for commit in retired {
        for &(p, s) in commit {
            let o = match now.get(&p) {
                Some(&o) => o,
                None => before(p).unwrap_or(0),
            };
            // The item the page leaves, and its base if it is a patch.
            // Whether they are dead is decided against Vo' below (a
            // candidate a later retired commit names again is not).
            if o != 0 && o != s {
                candidates.push((p, o));
                if let Some(b) = base_of(o).filter(|&b| b != 0 && patch::is_patch(o)) {
                    candidates.push((p, b));
                }
            }
            now.insert(p, s);
        }
    }
    // `now` is Vo''s slot for every page a retired commit changed; a page
    // no retired commit changed has no candidate.
    let mut dead: HashSet<u64> = HashSet::new();
    for (p, x) in candidates {
        let f = now[&p];
        if f == x || patch_on(f, x) || kept(x) {
            continue;
        }
        dead.insert(x);
    }
    let mut out: Vec<u64> = dead.into_iter().collect();
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::dead_items;
    use std::collections::{HashMap, HashSet};

    /// A history of page maps: item offsets handed out in order, images at
    /// multiples of 8, patches tagged (+1) with a base image of their page.
    struct History {
        /// versions[v]: page -> slot (version 0: empty).
        versions: Vec<HashMap<u32, u64>>,
        /// entries[v]: what commit v wrote (v >= 1).
        entries: Vec<Vec<(u32, u64)>>,
        bases: HashMap<u64, u64>,
    }

    fn rng(seed: &mut u64) -> u64 {
        crate::format::splitmix64(seed)
    }

    /// `n` commits over `pages` pages: new images, patches on the page's
    /// current image (or on its current patch's base), reverts of a page to
    /// its slot in a version at or after `revert_floor(v)` (a revert names
    /// only what the policy keeps when it commits), and zero pages.
    fn history(seed: u64, pages: u32, n: usize, revert_floor: &dyn Fn(usize) -> usize) -> History {
        let mut s = seed;
        let mut next = 4096u64;
        let mut h = History { versions: vec![HashMap::new()], entries: vec![vec![]], bases: HashMap::new() };
        for v in 1..=n {
            let mut map = h.versions[v - 1].clone();
            let mut e = Vec::new();
            let k = 1 + rng(&mut s) % 3;
            let mut touched = HashSet::new();
            for _ in 0..k {
                let p = 1 + (rng(&mut s) % pages as u64) as u32;
                if !touched.insert(p) {
                    continue;
                }
                let cur = map.get(&p).copied().unwrap_or(0);
                let slot = match rng(&mut s) % 10 {
                    0..=3 if cur != 0 => {
                        // A patch on the current image, or on the current
                        // patch's base.
                        let base = if cur % 8 == 1 { h.bases[&cur] } else { cur };
                        let at = next + 1;
                        next += 64;
                        h.bases.insert(at, base);
                        at
                    }
                    4 if v > 1 => {
                        let lo = revert_floor(v).clamp(1, v - 1);
                        let t = lo + (rng(&mut s) as usize) % (v - lo);
                        h.versions[t].get(&p).copied().unwrap_or(0)
                    }
                    5 => 0,
                    _ => {
                        let at = next;
                        next += 4096;
                        at
                    }
                };
                if slot == cur {
                    continue;
                }
                map.insert(p, slot);
                e.push((p, slot));
            }
            h.versions.push(map);
            h.entries.push(e);
        }
        h
    }

    /// Every item version `v` reaches: its slots and their bases.
    fn reach(h: &History, v: usize) -> HashSet<u64> {
        let mut r = HashSet::new();
        for &s in h.versions[v].values() {
            if s != 0 {
                r.insert(s);
                if let Some(&b) = h.bases.get(&s) {
                    r.insert(b);
                }
            }
        }
        r
    }

    /// The walk's answer for retiring `(vo, vo2]` of `h`, whose latest
    /// version is `latest`, with `kept` built as the caller builds it: the
    /// entries (and bases) of the commits after `vo2`.
    fn walk(h: &History, vo: usize, vo2: usize, latest: usize) -> Vec<u64> {
        let mut kept = HashSet::new();
        for e in &h.entries[vo2 + 1..=latest] {
            for &(_, s) in e {
                kept.insert(s);
                if let Some(&b) = h.bases.get(&s) {
                    kept.insert(b);
                }
            }
        }
        let before = |p: u32| h.versions[vo].get(&p).copied();
        let base_of = |s: u64| h.bases.get(&s).copied();
        dead_items(&before, &h.entries[vo + 1..=vo2], &base_of, &|x| kept.contains(&x))
    }

    /// The oracle: what `[vo, vo2)` reaches and no kept version does.
    fn oracle(h: &History, vo: usize, vo2: usize, latest: usize) -> Vec<u64> {
        let kept: HashSet<u64> = (vo2..=latest).flat_map(|v| reach(h, v)).collect();
        let mut d: Vec<u64> = (vo..vo2).flat_map(|v| reach(h, v)).filter(|x| !kept.contains(x)).collect();
        d.sort_unstable();
        d.dedup();
        d
    }

    #[test]
    fn the_walk_finds_exactly_what_no_kept_version_reaches() {
        let mut checked = 0;
        let mut found = 0;
        for seed in 0..300u64 {
            let pages = [3u32, 8, 40][(seed % 3) as usize];
            let n = 40 + (seed % 5) as usize * 20;
            let mut s = seed ^ 0x5eed;
            let vo = 1 + (rng(&mut s) as usize) % (n / 2);
            let vo2 = vo + 1 + (rng(&mut s) as usize) % (n / 3);
            let latest = n;
            // Reverts name only versions kept when they commit: those at or
            // after Vo before the step (the walk is one step).
            let h = history(seed, pages, n, &|_| vo);
            let want = oracle(&h, vo, vo2, latest);
            assert_eq!(walk(&h, vo, vo2, latest), want, "seed {seed}: retiring ({vo}, {vo2}] of {latest}");
            checked += 1;
            found += want.len();
        }
        assert!(checked == 300 && found > 1000, "the histories found too little dead: {found}");
    }

    #[test]
    fn steps_in_a_row_never_free_what_a_later_version_reaches() {
        // A policy of `keep` versions, a step every `every` commits: each
        // step retires what the policy dropped since the last; nothing any
        // step freed is reached by a version kept at that step or later.
        for seed in 0..60u64 {
            let (keep, every, n) = (10usize, 7usize, 200usize);
            let h = history(seed, 12, n, &|v| v.saturating_sub(keep));
            let mut vo = 1;
            let mut freed: Vec<(usize, u64)> = Vec::new();
            for latest in (every..=n).step_by(every) {
                let vo2 = latest.saturating_sub(keep).max(1);
                if vo2 <= vo {
                    continue;
                }
                for x in walk(&h, vo, vo2, latest) {
                    freed.push((vo2, x));
                }
                vo = vo2;
            }
            // What versions v..=n reach, for every v.
            let mut later: Vec<HashSet<u64>> = vec![HashSet::new(); n + 2];
            for v in (1..=n).rev() {
                let mut r = later[v + 1].clone();
                r.extend(reach(&h, v));
                later[v] = r;
            }
            for &(vo2, x) in &freed {
                assert!(!later[vo2].contains(&x), "seed {seed}: {x} freed at Vo' {vo2}, reached by a later version");
            }
            // Each item is freed once.
            let mut items: Vec<u64> = freed.iter().map(|f| f.1).collect();
            let all = items.len();
            items.sort_unstable();
            items.dedup();
            assert_eq!(items.len(), all, "seed {seed}: an item freed twice");
            assert!(all > 10, "seed {seed}: only {all} freed");
        }
    }

    #[test]
    fn a_patch_keeps_its_base_and_a_revert_keeps_what_it_names() {
        let bases: HashMap<u64, u64> = [(8193, 4096)].into();
        let base_of = |s: u64| bases.get(&s).copied();
        let before = |p: u32| (p == 1).then_some(4096);
        // Vo' patches page 1 on its image: the image stays.
        assert_eq!(dead_items(&before, &[vec![(1, 8193)]], &base_of, &|_| false), Vec::<u64>::new());
        // Then a new image: the patch and its base die.
        assert_eq!(dead_items(&before, &[vec![(1, 8193)], vec![(1, 12288)]], &base_of, &|_| false), vec![4096, 8193]);
        // Unless a kept revert names the base.
        assert_eq!(dead_items(&before, &[vec![(1, 8193)], vec![(1, 12288)]], &base_of, &|x| x == 4096), vec![8193]);
        // A page changed and changed back within the retired commits.
        assert_eq!(dead_items(&before, &[vec![(1, 12288)], vec![(1, 4096)]], &base_of, &|_| false), vec![12288]);
    }
}
