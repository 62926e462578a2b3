//! The counters of `/v2/stats/store` (etcd's `store.Stats`) and their JSON.
//!
//! Owns the field names and order of that JSON. Knows nothing about when a counter moves: the
//! applier counts writes, each shard counts the reads and watchers it serves, and the server
//! sums them.

/// etcd's store counters. `watchers` is not kept here: it is the live watcher count, passed in
/// when writing the JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub gets_success: u64,
    pub gets_fail: u64,
    pub sets_success: u64,
    pub sets_fail: u64,
    pub delete_success: u64,
    pub delete_fail: u64,
    pub update_success: u64,
    pub update_fail: u64,
    pub create_success: u64,
    pub create_fail: u64,
    pub compare_and_swap_success: u64,
    pub compare_and_swap_fail: u64,
    pub compare_and_delete_success: u64,
    pub compare_and_delete_fail: u64,
    pub expire_count: u64,
}

impl StoreStats {
    /// Every counter with its JSON name, in etcd's order (`watchers` comes after these).
    fn fields(&self) -> [(&'static str, u64); 15] {
        [
            ("getsSuccess", self.gets_success),
            ("getsFail", self.gets_fail),
            ("setsSuccess", self.sets_success),
            ("setsFail", self.sets_fail),
            ("deleteSuccess", self.delete_success),
            ("deleteFail", self.delete_fail),
            ("updateSuccess", self.update_success),
            ("updateFail", self.update_fail),
            ("createSuccess", self.create_success),
            ("createFail", self.create_fail),
            ("compareAndSwapSuccess", self.compare_and_swap_success),
            ("compareAndSwapFail", self.compare_and_swap_fail),
            ("compareAndDeleteSuccess", self.compare_and_delete_success),
            ("compareAndDeleteFail", self.compare_and_delete_fail),
            ("expireCount", self.expire_count),
        ]
    }

    /// Appends etcd's `/v2/stats/store` body (no trailing newline, as etcd writes it).
    pub fn write_json(&self, out: &mut Vec<u8>, watchers: usize) {
        out.push(b'{');
        for (name, value) in self.fields() {
            out.push(b'"');
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            out.extend_from_slice(value.to_string().as_bytes());
            out.push(b',');
        }
        out.extend_from_slice(b"\"watchers\":");
        out.extend_from_slice(watchers.to_string().as_bytes());
        out.push(b'}');
    }

    /// Adds every counter of `other` to this one.
    pub fn add(&mut self, other: &StoreStats) {
        let StoreStats {
            gets_success,
            gets_fail,
            sets_success,
            sets_fail,
            delete_success,
            delete_fail,
            update_success,
            update_fail,
            create_success,
            create_fail,
            compare_and_swap_success,
            compare_and_swap_fail,
            compare_and_delete_success,
            compare_and_delete_fail,
            expire_count,
        } = other;
        self.gets_success += gets_success;
        self.gets_fail += gets_fail;
        self.sets_success += sets_success;
        self.sets_fail += sets_fail;
        self.delete_success += delete_success;
        self.delete_fail += delete_fail;
        self.update_success += update_success;
        self.update_fail += update_fail;
        self.create_success += create_success;
        self.create_fail += create_fail;
        self.compare_and_swap_success += compare_and_swap_success;
        self.compare_and_swap_fail += compare_and_swap_fail;
        self.compare_and_delete_success += compare_and_delete_success;
        self.compare_and_delete_fail += compare_and_delete_fail;
        self.expire_count += expire_count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_etcds_names_and_order() {
        let stats = StoreStats {
            gets_success: 1,
            sets_fail: 2,
            expire_count: 3,
            ..StoreStats::default()
        };
        let mut out = Vec::new();
        stats.write_json(&mut out, 4);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"getsSuccess\":1,\"getsFail\":0,\"setsSuccess\":0,\"setsFail\":2,\"deleteSuccess\":0,\
             \"deleteFail\":0,\"updateSuccess\":0,\"updateFail\":0,\"createSuccess\":0,\"createFail\":0,\
             \"compareAndSwapSuccess\":0,\"compareAndSwapFail\":0,\"compareAndDeleteSuccess\":0,\
             \"compareAndDeleteFail\":0,\"expireCount\":3,\"watchers\":4}"
        );
    }

    #[test]
    fn add_sums_every_counter() {
        let mut ones = StoreStats::default();
        ones.add(&StoreStats {
            gets_success: 1,
            compare_and_delete_fail: 1,
            ..StoreStats::default()
        });
        ones.add(&StoreStats {
            gets_success: 2,
            expire_count: 5,
            ..StoreStats::default()
        });
        assert_eq!(
            ones,
            StoreStats {
                gets_success: 3,
                compare_and_delete_fail: 1,
                expire_count: 5,
                ..StoreStats::default()
            }
        );
    }
}
