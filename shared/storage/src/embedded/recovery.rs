//! Recovery's claims (`rules::recovery`): a page of the `attempts` table in the window, and
//! each delivery whose first attempt is on it claimed in `delivery_status`, all in one write
//! transaction.

use rusqlite::{OptionalExtension, params};
use webhooks_domain::DeliveryStatus;

use super::EmbeddedStore;
use super::connection::{from_json, to_json, write_tx};
use super::delivery_log::merge_recent_attempts;
use crate::StoreError;
use crate::ports::{DeliveryRecovery, LogPosition, RecoveryPage, RecoveryScope};
use crate::rules::attempt_key::attempt_key_range;
use crate::rules::recovery::{CLAIMED, StoredStatus, claim, first_attempts, position_after};
use crate::rules::unix_time::now_ms;

/// The window's attempt keys after `?5` (NULL: from its start), oldest first, `?6` at most.
const WINDOW_KEYS: &str = "SELECT sort_key FROM attempts WHERE merchant_id = ?1 AND subscription_id = ?2 \
    AND sort_key BETWEEN ?3 AND ?4 AND (?5 IS NULL OR sort_key > ?5) ORDER BY sort_key LIMIT ?6";
/// A delivery's stored status.
const STATUS: &str = "SELECT merchant_id, status, last_attempt FROM delivery_status \
    WHERE event_id = ?1 AND subscription_id = ?2";
/// The claim: the status as read (`?5`) becomes `?1`.
const CLAIM: &str = "UPDATE delivery_status SET status = ?1, expires_at_ms = ?2 \
    WHERE event_id = ?3 AND subscription_id = ?4 AND status = ?5";

impl DeliveryRecovery for EmbeddedStore {
    async fn claim_for_recovery(
        &self,
        scope: &RecoveryScope<'_>,
        after: Option<&LogPosition>,
        limit: usize,
    ) -> Result<RecoveryPage, StoreError> {
        let (first, last) = attempt_key_range(scope.since_ms, scope.until_ms);
        let after = after.map(LogPosition::sort_key);
        // One row more than the page, to know whether the window goes on.
        let fetch_rows = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        let (claimed_status, expires_at_ms) = (to_json(&CLAIMED)?, self.expires_at_ms(now_ms()));
        self.db.call("delivery_log.claim_for_recovery", |conn| {
            let tx = write_tx(conn)?;
            merge_recent_attempts(&tx)?;
            let mut keys: Vec<String> = tx
                .prepare_cached(WINDOW_KEYS)?
                .query_map(
                    params![scope.merchant_id, scope.subscription_id, first, last, after, fetch_rows],
                    |row| row.get(0),
                )?
                .collect::<Result<_, _>>()?;
            let more = keys.len() > limit;
            keys.truncate(limit);
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let mut claimed = Vec::new();
            for event_id in first_attempts(&keys)? {
                let stored: Option<(String, String, u32)> = tx
                    .prepare_cached(STATUS)?
                    .query_row([event_id, scope.subscription_id], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                    })
                    .optional()?;
                let Some((merchant_id, status_json, last_attempt)) = stored else {
                    continue;
                };
                let status: DeliveryStatus = from_json(&status_json)?;
                let stored = StoredStatus {
                    merchant_id: &merchant_id,
                    status,
                    last_attempt,
                };
                let Some(claim) = claim(scope, event_id, &stored) else {
                    continue;
                };
                let row = params![
                    claimed_status,
                    expires_at_ms,
                    event_id,
                    scope.subscription_id,
                    status_json
                ];
                if tx.prepare_cached(CLAIM)?.execute(row)? == 1 {
                    claimed.push(claim);
                }
            }
            tx.commit()?;
            let next = position_after(keys.last().copied().filter(|_| more))?;
            Ok(RecoveryPage { claimed, next })
        })
    }
}
