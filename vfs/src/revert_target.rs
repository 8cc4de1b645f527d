//! Before a revert makes an old version the latest: that version must read.
//!
//! A revert refers to its target's page images without reading them
//! (unchanged pages are shared, not copied), so a target that damage hides
//! would become the latest, and the database itself unreadable ("database
//! disk image is malformed" where it read fine before). [`Log::revert`]
//! therefore first reads back, crcs checked, the target's pages the latest
//! does not share: a page whose stored slot (offset and crc, before any
//! format-4 redirection) is the latest's reads the bytes the latest reads
//! already. The slots are looked up as reads look them up (format 4: a tree
//! node below the boundary is read at its copy, never where it lay, which
//! a step may have freed and punched). The pages compared are those
//! [`changed_pages`] finds: format 4 walks the two trees together and skips
//! every subtree they share, so the cost is proportional to what changed
//! since the target, not to the database; a shared subtree reads alike in
//! both (the same bytes, read at the same place: `changed.rs` invariant 1),
//! so a revert neither adds nor hides damage there. Then the pages changed
//! since the target are read, as `pagelog diff` reads them.
//!
//! Invariant: a refused revert writes nothing, and its error,
//! [`Error::Unreadable`], holds the read's error, which names the damage's
//! offset.

use crate::changed::changed_pages;
use crate::error::{Error, Result};
use crate::log::{Log, Version};

impl Log {
    /// Fails with [`Error::Unreadable`] unless every page of `target` that
    /// `latest` does not share reads, its crc checked. A page whose slot in
    /// `latest`'s map cannot be looked up (a damaged node) counts as not
    /// shared: reverting away from a damaged latest is what a revert is for.
    pub(crate) fn check_revert_target(&self, target: &Version, latest: &Version) -> Result<()> {
        let unreadable = |e: Error| Error::Unreadable { version: target.number, source: Box::new(e) };
        let n = target.db_pages();
        for pgno in changed_pages(target, latest).pages.into_iter().take_while(|&p| p <= n) {
            let slot = target.map_slot(pgno).map_err(unreadable)?;
            if latest.map_slot(pgno).ok() != Some(slot) {
                target.page(pgno).map_err(unreadable)?;
            }
        }
        Ok(())
    }
}
