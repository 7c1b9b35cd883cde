//! Recording one `$exception` occurrence: exactly once, whatever PostHog retries or runs in parallel.
//!
//! Each attempt is two requests: a consistent BatchGetItem of what the decision needs (connection
//! status, mapping, the draft's counter item, the user's marker) and one TransactWriteItems that
//! writes the delivery's dedup record together with the counters, so a delivery is either counted
//! and remembered, or neither. A cancelled transaction wrote nothing: the attempt is re-planned from a
//! fresh read (a concurrent first occurrence created the draft, a concurrent delivery moved
//! `last_seen`, the same user arrived twice at once) until the deadline.

use super::{attr, keys, Item, Store, StoreError};
use crate::draft::{draft_id, user_key, LatestContext};
use crate::ids::{ConnectionId, EnvironmentId, WorkspaceId};
use crate::issue::IssueStatus;
use crate::occurrence::{rfc3339, Occurrence};
use crate::store::connections::ConnectionStatus;
use crate::store::mappings::{self, Mapping};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem, Update};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// Dedup records outlive PostHog's retries (seconds) by far; a week also covers manual replays.
const DEDUP_TTL_SECONDS: i64 = 7 * 24 * 3600;

pub struct DeliveryContext<'a> {
    pub connection_id: &'a ConnectionId,
    pub workspace_id: &'a WorkspaceId,
    pub webhook_id: &'a str,
    pub received_at: OffsetDateTime,
    pub max_new_drafts_per_hour: u32,
    /// Give up (and answer 503) after this instant, well inside PostHog's 10 s.
    pub deadline: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created {
        draft_id: String,
    },
    Updated {
        draft_id: String,
    },
    Duplicate {
        draft_id: String,
    },
    Ignored {
        reason: &'static str,
    },
    /// The connection is unknown or disconnected.
    Gone,
}

/// What one consistent read shows.
struct Snapshot {
    connection: Option<ConnectionStatus>,
    mapping: Option<Mapping>,
    stats: Option<Item>,
    user_known: bool,
}

enum Attempt {
    Done(Outcome),
    /// A condition failed: another write moved the state; re-plan from a fresh read.
    Retry,
    /// The draft's main counter item is contended (transaction conflicts or throttling): the
    /// next attempts go to an overflow shard.
    Contended,
}

/// Which of the three min/max plans an overflow shard write assumes (no read precedes it).
#[derive(Clone, Copy)]
enum ShardPlan {
    Newest,
    Between,
    Oldest,
}

impl Store {
    pub async fn record_occurrence(
        &self,
        o: &Occurrence,
        ctx: &DeliveryContext<'_>,
    ) -> Result<Outcome, StoreError> {
        let ws = ctx.workspace_id;
        let env = o.environment_id;
        let id = draft_id(ws, env, &o.fingerprint);
        let user = o.distinct_id.as_deref().map(user_key);
        let delivery_key = match &o.event_uuid {
            Some(uuid) => format!("uuid:{uuid}"),
            None => format!("webhook:{}", ctx.webhook_id),
        };
        let mut attempt = 0u32;
        let mut contended = false;
        let mut shard_plan = ShardPlan::Newest;
        loop {
            let snap = self
                .snapshot(ctx.connection_id, ws, env, &id, user.as_deref())
                .await?;
            if !snap
                .connection
                .is_some_and(ConnectionStatus::accepts_deliveries)
            {
                return Ok(Outcome::Gone);
            }
            let channel = match Mapping::route(snap.mapping.as_ref()) {
                Ok(channel) => channel.clone(),
                Err(not) => {
                    return Ok(Outcome::Ignored {
                        reason: not.reason(),
                    })
                }
            };
            let plan = Plan {
                o,
                ctx,
                draft_id: &id,
                user: user.as_deref(),
                user_known: snap.user_known,
                delivery_key: &delivery_key,
            };
            // A regression must reopen the issue, which only the main item knows how to do.
            let regression = snap
                .stats
                .as_ref()
                .is_some_and(|s| attr::s(s, "issue_state") == Some(IssueStatus::Resolved.as_str()));
            let result = match &snap.stats {
                Some(_) if contended && !regression => {
                    let shard = 1 + (fnv(&delivery_key) + attempt) % keys::DRAFT_SHARDS;
                    let r = self.try_shard(&plan, shard, shard_plan).await?;
                    if matches!(r, Attempt::Retry) {
                        shard_plan = match shard_plan {
                            ShardPlan::Newest => ShardPlan::Between,
                            ShardPlan::Between => ShardPlan::Oldest,
                            ShardPlan::Oldest => ShardPlan::Newest,
                        };
                    }
                    r
                }
                Some(stats) => self.try_repeat(&plan, stats).await?,
                None => self.try_create(&plan, channel.as_str()).await?,
            };
            match result {
                Attempt::Done(Outcome::Ignored {
                    reason: "draft_limit",
                }) => {
                    self.count_draft_limit_hit(ws, env, &rfc3339(ctx.received_at))
                        .await?;
                    return Ok(Outcome::Ignored {
                        reason: "draft_limit",
                    });
                }
                Attempt::Done(outcome) => return Ok(outcome),
                Attempt::Retry | Attempt::Contended => {
                    contended |= matches!(result, Attempt::Contended);
                    attempt += 1;
                    let pause = backoff(attempt);
                    if Instant::now() + pause >= ctx.deadline {
                        return Err(StoreError::Unavailable(format!(
                            "gave up after {attempt} contended attempts"
                        )));
                    }
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }

    async fn snapshot(
        &self,
        conn: &ConnectionId,
        ws: &WorkspaceId,
        env: EnvironmentId,
        draft_id: &str,
        user: Option<&str>,
    ) -> Result<Snapshot, StoreError> {
        let conn_key = keys::connection(conn);
        let mapping_key = keys::mapping(ws, env);
        let stats_key = keys::draft_stats(ws, draft_id);
        let user_key = user.map(|u| keys::draft_user(ws, draft_id, u));
        let mut wanted = vec![conn_key.clone(), mapping_key.clone(), stats_key.clone()];
        wanted.extend(user_key.clone());

        let mut found = self.batch_get(wanted).await?;
        Ok(Snapshot {
            connection: found
                .get(&conn_key)
                .and_then(|i| attr::s(i, "status"))
                .and_then(ConnectionStatus::parse),
            mapping: found.get(&mapping_key).map(mappings::from_item),
            stats: found.remove(&stats_key),
            user_known: user_key.is_some_and(|k| found.contains_key(&k)),
        })
    }

    async fn try_repeat(&self, p: &Plan<'_>, stats: &Item) -> Result<Attempt, StoreError> {
        let t = p.timestamp_ms();
        let last = attr::n(stats, "last_seen").unwrap_or(i64::MIN);
        let first = attr::n(stats, "first_seen").unwrap_or(i64::MAX);
        let new_user = p.user.is_some() && !p.user_known;
        let Counting {
            mut set,
            add,
            mut names,
            mut values,
        } = Counting::of(p, new_user);
        // Deliveries arrive out of order: last_seen is a max, first_seen a min, the context the
        // latest by event time. The condition makes the plan fail if a concurrent write moved them.
        let condition = if t >= last {
            set.extend(["#last = :t", "#ctx = :ctx", "#gsk = :gsk"]);
            names.push(("#ctx", "ctx".into()));
            names.push(("#gsk", keys::GSI1SK.into()));
            values.push((":ctx", attr::str(p.latest_context())));
            values.push((":gsk", attr::str(keys::drafts_index_sk(t, p.draft_id))));
            "#last <= :t AND attribute_exists(#first)"
        } else if t >= first {
            "#last > :t AND #first <= :t"
        } else {
            set.push("#first = :t");
            "#first > :t AND #last > :t"
        };
        // An occurrence after the issue was resolved reopens it as regressed (DESIGN.md §8).
        let regressed_issue = attr::s(stats, "issue_id")
            .filter(|_| attr::s(stats, "issue_state") == Some(IssueStatus::Resolved.as_str()));
        let condition = if regressed_issue.is_some() {
            set.push("#is = :open");
            names.push(("#is", "issue_state".into()));
            values.push((":open", attr::str(IssueStatus::Open.as_str())));
            values.push((":resolved", attr::str(IssueStatus::Resolved.as_str())));
            format!("{condition} AND #is = :resolved")
        } else {
            condition.to_owned()
        };
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(
                self.key(keys::draft_stats(p.ctx.workspace_id, p.draft_id)),
            ))
            .update_expression(format!("SET {} ADD {}", set.join(", "), add.join(", ")))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(
                names.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            ))
            .set_expression_attribute_values(Some(
                values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            ))
            .build()
            .map_err(|e| StoreError::sdk("TransactWriteItems", e))?;

        let mut items = vec![
            TransactWriteItem::builder().put(self.dedup_put(p)?).build(),
            TransactWriteItem::builder().update(update).build(),
        ];
        if new_user {
            items.push(TransactWriteItem::builder().put(self.user_put(p)?).build());
        }
        if let Some(iid) = regressed_issue {
            let reopen = Update::builder()
                .table_name(&self.table)
                .set_key(Some(self.key(keys::issue(p.ctx.workspace_id, iid))))
                .update_expression("SET #st = :open, #rg = :true, #up = :now")
                .condition_expression("attribute_exists(PK)")
                .expression_attribute_names("#st", "status")
                .expression_attribute_names("#rg", "regressed")
                .expression_attribute_names("#up", "updated_at")
                .expression_attribute_values(":open", attr::str(IssueStatus::Open.as_str()))
                .expression_attribute_values(":true", AttributeValue::Bool(true))
                .expression_attribute_values(":now", attr::str(rfc3339(p.ctx.received_at)))
                .build()
                .map_err(|e| StoreError::sdk("TransactWriteItems", e))?;
            items.push(TransactWriteItem::builder().update(reopen).build());
        }
        Ok(match self.transact(items).await? {
            None => Attempt::Done(Outcome::Updated {
                draft_id: p.draft_id.to_owned(),
            }),
            Some(reasons) if failed(&reasons, 0) => Attempt::Done(Outcome::Duplicate {
                draft_id: p.draft_id.to_owned(),
            }),
            Some(reasons) if hot(&reasons, 1) => Attempt::Contended,
            Some(_) => Attempt::Retry,
        })
    }

    /// A repeat counted on overflow shard `shard` instead of the contended main counter item. The
    /// shard is written without reading it first, so the plan guesses where the event falls against
    /// the shard's own first/last seen; a wrong guess fails its condition and the next plan is tried.
    async fn try_shard(
        &self,
        p: &Plan<'_>,
        shard: u32,
        plan: ShardPlan,
    ) -> Result<Attempt, StoreError> {
        let new_user = p.user.is_some() && !p.user_known;
        let Counting {
            mut set,
            add,
            mut names,
            mut values,
        } = Counting::of(p, new_user);
        let condition = match plan {
            ShardPlan::Newest => {
                set.extend([
                    "#last = :t",
                    "#ctx = :ctx",
                    "#first = if_not_exists(#first, :t)",
                ]);
                names.push(("#ctx", "ctx".into()));
                values.push((":ctx", attr::str(p.latest_context())));
                "attribute_not_exists(#last) OR #last <= :t"
            }
            ShardPlan::Between => "#last > :t AND #first <= :t",
            ShardPlan::Oldest => {
                set.push("#first = :t");
                "#first > :t AND #last > :t"
            }
        };
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(self.key(keys::draft_shard(
                p.ctx.workspace_id,
                p.draft_id,
                shard,
            ))))
            .update_expression(format!("SET {} ADD {}", set.join(", "), add.join(", ")))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(
                names.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            ))
            .set_expression_attribute_values(Some(
                values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            ))
            .build()
            .map_err(|e| StoreError::sdk("TransactWriteItems", e))?;
        let mut items = vec![
            TransactWriteItem::builder().put(self.dedup_put(p)?).build(),
            TransactWriteItem::builder().update(update).build(),
        ];
        if new_user {
            items.push(TransactWriteItem::builder().put(self.user_put(p)?).build());
        }
        Ok(match self.transact(items).await? {
            None => Attempt::Done(Outcome::Updated {
                draft_id: p.draft_id.to_owned(),
            }),
            Some(reasons) if failed(&reasons, 0) => Attempt::Done(Outcome::Duplicate {
                draft_id: p.draft_id.to_owned(),
            }),
            Some(reasons) if hot(&reasons, 1) => Attempt::Contended,
            Some(_) => Attempt::Retry,
        })
    }

    async fn try_create(&self, p: &Plan<'_>, channel: &str) -> Result<Attempt, StoreError> {
        let ws = p.ctx.workspace_id;
        let o = p.o;
        let t = p.timestamp_ms();
        let now = rfc3339(p.ctx.received_at);
        let rank = o.suggestion.priority as i64;

        let connection_open = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(self.key(keys::connection(p.ctx.connection_id))))
            .condition_expression("attribute_exists(PK) AND #s <> :gone")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(
                ":gone",
                attr::str(ConnectionStatus::Disconnected.as_str()),
            )
            .build()
            .map_err(|e| StoreError::sdk("TransactWriteItems", e))?;

        let evidence = serde_json::to_string(&o.evidence)
            .map_err(|e| StoreError::Malformed(format!("evidence: {e}")))?;
        let mut head = self.key(keys::draft_head(ws, p.draft_id));
        head.extend([
            ("draft_id".to_owned(), attr::str(p.draft_id)),
            ("workspace_id".to_owned(), attr::str(ws.as_str())),
            (
                "connection_id".to_owned(),
                attr::str(p.ctx.connection_id.as_str()),
            ),
            (
                "environment_id".to_owned(),
                attr::num(o.environment_id.get()),
            ),
            (
                "environment_name".to_owned(),
                attr::opt_str(o.environment_name.as_deref()),
            ),
            ("channel_id".to_owned(), attr::str(channel)),
            ("fingerprint".to_owned(), attr::str(o.fingerprint.as_str())),
            (
                "posthog_issue_id".to_owned(),
                attr::opt_str(o.posthog_issue_id.as_deref()),
            ),
            (
                "posthog_issue_url".to_owned(),
                attr::opt_str(o.links.posthog_issue.as_deref()),
            ),
            ("title".to_owned(), attr::str(&o.title)),
            ("level".to_owned(), attr::str(o.level.as_str())),
            ("handled".to_owned(), AttributeValue::Bool(o.handled)),
            ("evidence".to_owned(), attr::str(evidence)),
            ("created_at".to_owned(), attr::str(&now)),
        ]);

        let mut stats = self.key(keys::draft_stats(ws, p.draft_id));
        stats.extend([
            ("draft_id".to_owned(), attr::str(p.draft_id)),
            ("channel_id".to_owned(), attr::str(channel)),
            ("status".to_owned(), attr::str("draft")),
            ("occ".to_owned(), attr::num(1)),
            ("users".to_owned(), attr::num(i64::from(p.user.is_some()))),
            ("first_seen".to_owned(), attr::num(t)),
            ("last_seen".to_owned(), attr::num(t)),
            (
                "prio".to_owned(),
                AttributeValue::Ns(vec![rank.to_string()]),
            ),
            (format!("reason_{rank}"), attr::str(&o.suggestion.reason)),
            ("ctx".to_owned(), attr::str(p.latest_context())),
            ("updated_at".to_owned(), attr::str(&now)),
            (
                keys::GSI1PK.to_owned(),
                attr::str(keys::drafts_index_pk(ws)),
            ),
            (
                keys::GSI1SK.to_owned(),
                attr::str(keys::drafts_index_sk(t, p.draft_id)),
            ),
        ]);

        let hour = format!(
            "{:04}{:02}{:02}{:02}",
            p.ctx.received_at.year(),
            u8::from(p.ctx.received_at.month()),
            p.ctx.received_at.day(),
            p.ctx.received_at.hour()
        );
        let rate = Update::builder()
            .table_name(&self.table)
            .set_key(Some(self.key(keys::draft_rate(
                ws,
                o.environment_id,
                &hour,
            ))))
            .update_expression("ADD #n :one SET #exp = :exp")
            .condition_expression("attribute_not_exists(#n) OR #n < :max")
            .expression_attribute_names("#n", "n")
            .expression_attribute_names("#exp", keys::TTL)
            .expression_attribute_values(":one", attr::num(1))
            .expression_attribute_values(
                ":max",
                attr::num(i64::from(p.ctx.max_new_drafts_per_hour)),
            )
            .expression_attribute_values(
                ":exp",
                attr::num(p.ctx.received_at.unix_timestamp() + 7200),
            )
            .build()
            .map_err(|e| StoreError::sdk("TransactWriteItems", e))?;

        let mut items = vec![
            TransactWriteItem::builder()
                .condition_check(connection_open)
                .build(),
            TransactWriteItem::builder()
                .put(new_item(&self.table, head)?)
                .build(),
            TransactWriteItem::builder()
                .put(new_item(&self.table, stats)?)
                .build(),
            TransactWriteItem::builder().put(self.dedup_put(p)?).build(),
            TransactWriteItem::builder().update(rate).build(),
        ];
        if p.user.is_some() {
            items.push(TransactWriteItem::builder().put(self.user_put(p)?).build());
        }
        Ok(match self.transact(items).await? {
            None => Attempt::Done(Outcome::Created {
                draft_id: p.draft_id.to_owned(),
            }),
            Some(r) if failed(&r, 0) => Attempt::Done(Outcome::Gone),
            Some(r) if failed(&r, 3) => Attempt::Done(Outcome::Duplicate {
                draft_id: p.draft_id.to_owned(),
            }),
            // Created concurrently: the next attempt counts this occurrence as a repeat.
            Some(r) if failed(&r, 1) || failed(&r, 2) => Attempt::Retry,
            Some(r) if failed(&r, 4) => Attempt::Done(Outcome::Ignored {
                reason: "draft_limit",
            }),
            Some(_) => Attempt::Retry,
        })
    }

    fn dedup_put(&self, p: &Plan<'_>) -> Result<Put, StoreError> {
        let mut item = self.key(keys::dedup(
            p.ctx.workspace_id,
            p.o.environment_id,
            p.delivery_key,
        ));
        item.insert("draft_id".into(), attr::str(p.draft_id));
        item.insert("webhook_id".into(), attr::str(p.ctx.webhook_id));
        item.insert(
            keys::TTL.into(),
            attr::num(p.ctx.received_at.unix_timestamp() + DEDUP_TTL_SECONDS),
        );
        new_item(&self.table, item)
    }

    fn user_put(&self, p: &Plan<'_>) -> Result<Put, StoreError> {
        let user = p.user.unwrap_or_default();
        let item = self.key(keys::draft_user(p.ctx.workspace_id, p.draft_id, user));
        new_item(&self.table, item)
    }

    /// `Ok(None)` when committed, `Ok(Some(reasons))` when cancelled, `Err` when DynamoDB failed.
    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Option<Vec<String>>, StoreError> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(None),
            Err(SdkError::ServiceError(e)) => match e.into_err() {
                TransactWriteItemsError::TransactionCanceledException(c) => Ok(Some(
                    c.cancellation_reasons()
                        .iter()
                        .map(|r| r.code().unwrap_or("None").to_owned())
                        .collect(),
                )),
                // Throttled after the SDK's own retries: the items were not written. Reported as a
                // cancellation by throttling so the caller can move off the hot item.
                TransactWriteItemsError::ProvisionedThroughputExceededException(_)
                | TransactWriteItemsError::RequestLimitExceeded(_)
                | TransactWriteItemsError::ThrottlingException(_) => {
                    Ok(Some(vec!["ThrottlingError".to_owned(); 2]))
                }
                other => Err(StoreError::sdk("TransactWriteItems", other)),
            },
            Err(e) => Err(StoreError::sdk("TransactWriteItems", e)),
        }
    }
}

/// The part of a counter update every accepted delivery makes, on the main item or a shard:
/// occurrences, the rank seen (a number set, so raising needs no read), its reason, the user when
/// new. Every attribute goes through a name placeholder: several are DynamoDB reserved words.
struct Counting {
    set: Vec<&'static str>,
    add: Vec<&'static str>,
    names: Vec<(&'static str, String)>,
    values: Vec<(&'static str, AttributeValue)>,
}

impl Counting {
    fn of(p: &Plan<'_>, new_user: bool) -> Self {
        let rank = p.o.suggestion.priority as i64;
        let mut c = Self {
            set: vec!["#reason = :reason", "#updated = :now"],
            add: vec!["#occ :one", "#prio :prio"],
            names: vec![
                ("#reason", format!("reason_{rank}")),
                ("#updated", "updated_at".into()),
                ("#occ", "occ".into()),
                ("#prio", "prio".into()),
                ("#first", "first_seen".into()),
                ("#last", "last_seen".into()),
            ],
            values: vec![
                (":reason", attr::str(&p.o.suggestion.reason)),
                (":now", attr::str(rfc3339(p.ctx.received_at))),
                (":one", attr::num(1)),
                (":prio", AttributeValue::Ns(vec![rank.to_string()])),
                (":t", attr::num(p.timestamp_ms())),
            ],
        };
        if new_user {
            c.add.push("#users :one");
            c.names.push(("#users", "users".into()));
        }
        c
    }
}

struct Plan<'a> {
    o: &'a Occurrence,
    ctx: &'a DeliveryContext<'a>,
    draft_id: &'a str,
    user: Option<&'a str>,
    user_known: bool,
    delivery_key: &'a str,
}

impl Plan<'_> {
    fn timestamp_ms(&self) -> i64 {
        (self.o.timestamp.unix_timestamp_nanos() / 1_000_000) as i64
    }

    fn latest_context(&self) -> String {
        serde_json::to_string(&LatestContext::of(self.o)).unwrap_or_else(|_| "{}".into())
    }
}

fn new_item(table: &str, item: Item) -> Result<Put, StoreError> {
    Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(PK)")
        .build()
        .map_err(|e| StoreError::sdk("TransactWriteItems", e))
}

/// The item at `index` was contended rather than wrong: a conflicting transaction or throttling.
fn hot(reasons: &[String], index: usize) -> bool {
    reasons
        .get(index)
        .is_some_and(|c| c == "TransactionConflict" || c == "ThrottlingError")
}

/// A stable small hash to spread deliveries over the shards.
fn fnv(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

fn failed(reasons: &[String], index: usize) -> bool {
    reasons
        .get(index)
        .is_some_and(|c| c == "ConditionalCheckFailed")
}

/// Short, jittered pauses: contention clears in milliseconds, and PostHog waits 10 s at most.
fn backoff(attempt: u32) -> Duration {
    let base = 10u64 * u64::from(attempt.min(6));
    let jitter =
        u64::from(OffsetDateTime::now_utc().nanosecond() % 1000 * (attempt.min(6) + 1) / 100);
    Duration::from_millis(base + jitter)
}
