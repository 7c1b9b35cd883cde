//! Review actions on drafts (approve, dismiss, restore) and the issues approval creates, kept in
//! sync with PostHog's status (DESIGN.md §3, §8). Every action records who (`sub`) and when.

use super::{attr, drafts, keys, Item, Store, StoreError};
use crate::draft::{DraftStatus, DraftView};
use crate::ids::WorkspaceId;
use crate::issue::{issue_id, IssueStatus, IssueView};
use crate::priority::Priority;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("not found")]
    NotFound,
    /// The action does not apply to the draft's current status (e.g. dismissing an approved draft).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Approval<'a> {
    pub title: Option<&'a str>,
    pub priority: Option<Priority>,
    pub by: &'a str,
    pub at: &'a str,
}

/// What a PostHog status change did to our issues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncedIssues {
    pub issue_ids: Vec<String>,
}

fn names(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl Store {
    async fn head_and_stats(
        &self,
        ws: &WorkspaceId,
        draft_id: &str,
    ) -> Result<Option<(Item, Item)>, StoreError> {
        let head = self.get(keys::draft_head(ws, draft_id)).await?;
        let stats = self.get(keys::draft_stats(ws, draft_id)).await?;
        Ok(head.zip(stats))
    }

    /// Approves a draft into its issue. `Ok((issue, true))` the first time; a second call returns the
    /// same issue unchanged, whatever its overrides.
    pub async fn approve(
        &self,
        ws: &WorkspaceId,
        draft_id: &str,
        a: &Approval<'_>,
    ) -> Result<(IssueView, bool), ReviewError> {
        let (head, stats) = self
            .head_and_stats(ws, draft_id)
            .await?
            .ok_or(ReviewError::NotFound)?;
        if let Some(existing) = attr::s(&head, "issue_id") {
            let issue = self
                .get_issue(ws, existing)
                .await?
                .ok_or(ReviewError::NotFound)?;
            return Ok((issue, false));
        }
        let draft = drafts::view(&head, &stats)?;
        let iid = issue_id(draft_id);
        let title = a
            .title
            .map(str::to_owned)
            .unwrap_or_else(|| draft.title.clone());
        let priority = a.priority.unwrap_or(draft.priority);

        let mut head_set = vec![
            "#st = :approved",
            "#iid = :iid",
            "#by = :by",
            "#at = :at",
            "#up = :at",
        ];
        let mut head_names = vec![
            ("#st", "status"),
            ("#iid", "issue_id"),
            ("#by", "approved_by"),
            ("#at", "approved_at"),
            ("#up", "updated_at"),
        ];
        let mut head_values = vec![
            (":approved", attr::str("approved")),
            (":iid", attr::str(&iid)),
            (":by", attr::str(a.by)),
            (":at", attr::str(a.at)),
        ];
        if let Some(t) = a.title {
            head_set.push("#to = :to");
            head_names.push(("#to", "title_override"));
            head_values.push((":to", attr::str(t)));
        }
        if let Some(p) = a.priority {
            head_set.push("#po = :po");
            head_names.push(("#po", "priority_override"));
            head_values.push((":po", attr::str(p.as_str())));
        }
        let head_update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(self.key(keys::draft_head(ws, draft_id))))
            .update_expression(format!("SET {}", head_set.join(", ")))
            .condition_expression("attribute_exists(PK) AND attribute_not_exists(#iid)")
            .set_expression_attribute_names(Some(names(&head_names)))
            .set_expression_attribute_values(Some(
                head_values
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect(),
            ))
            .build()
            .map_err(|e| StoreError::sdk("TransactWriteItems", e))?;
        let stats_update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(self.key(keys::draft_stats(ws, draft_id))))
            .update_expression("SET #st = :approved, #iid = :iid, #is = :open")
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#iid", "issue_id")
            .expression_attribute_names("#is", "issue_state")
            .expression_attribute_values(":approved", attr::str("approved"))
            .expression_attribute_values(":iid", attr::str(&iid))
            .expression_attribute_values(":open", attr::str(IssueStatus::Open.as_str()))
            .build()
            .map_err(|e| StoreError::sdk("TransactWriteItems", e))?;
        let mut issue = self.key(keys::issue(ws, &iid));
        issue.extend([
            ("issue_id".to_owned(), attr::str(&iid)),
            ("draft_id".to_owned(), attr::str(draft_id)),
            ("title".to_owned(), attr::str(&title)),
            ("priority".to_owned(), attr::str(priority.as_str())),
            ("status".to_owned(), attr::str(IssueStatus::Open.as_str())),
            ("regressed".to_owned(), AttributeValue::Bool(false)),
            ("approved_by".to_owned(), attr::str(a.by)),
            ("created_at".to_owned(), attr::str(a.at)),
            ("updated_at".to_owned(), attr::str(a.at)),
            ("environment_id".to_owned(), attr::num(draft.environment.id)),
            (
                "posthog_issue_id".to_owned(),
                attr::opt_str(draft.posthog_issue_id.as_deref()),
            ),
        ]);
        let mut items = vec![
            TransactWriteItem::builder().update(head_update).build(),
            TransactWriteItem::builder().update(stats_update).build(),
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(issue))
                        .condition_expression("attribute_not_exists(PK)")
                        .build()
                        .map_err(|e| StoreError::sdk("TransactWriteItems", e))?,
                )
                .build(),
        ];
        if let Some(ph) = &draft.posthog_issue_id {
            // Where PostHog has no lifecycle destination, `sync` polls the status of the issues
            // listed here (a Query per workspace, never a Scan).
            items.push(
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(&self.table)
                            .set_item(Some(super::sync::approved_issue_item(
                                self,
                                ws,
                                &iid,
                                draft_id,
                                draft.environment.id,
                                ph,
                            )))
                            .build()
                            .map_err(|e| StoreError::sdk("TransactWriteItems", e))?,
                    )
                    .build(),
            );
            let mut link = self.key(keys::posthog_issue_link(ws, ph, &iid));
            link.insert("issue_id".into(), attr::str(&iid));
            link.insert("draft_id".into(), attr::str(draft_id));
            items.push(
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(&self.table)
                            .set_item(Some(link))
                            .build()
                            .map_err(|e| StoreError::sdk("TransactWriteItems", e))?,
                    )
                    .build(),
            );
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => {
                let issue = self
                    .get_issue(ws, &iid)
                    .await?
                    .ok_or(ReviewError::NotFound)?;
                Ok((issue, true))
            }
            // Approved concurrently: answer the issue that won.
            Err(SdkError::ServiceError(e))
                if matches!(
                    e.err(),
                    TransactWriteItemsError::TransactionCanceledException(_)
                ) =>
            {
                let issue = self
                    .get_issue(ws, &iid)
                    .await?
                    .ok_or(ReviewError::NotFound)?;
                Ok((issue, false))
            }
            Err(e) => Err(StoreError::sdk("TransactWriteItems", e).into()),
        }
    }

    /// Moves a draft between `draft` and `dismissed`; an approved draft cannot be dismissed or restored.
    pub async fn set_review_status(
        &self,
        ws: &WorkspaceId,
        draft_id: &str,
        to: DraftStatus,
        by: &str,
        at: &str,
    ) -> Result<DraftView, ReviewError> {
        let (head, _) = self
            .head_and_stats(ws, draft_id)
            .await?
            .ok_or(ReviewError::NotFound)?;
        let current = attr::s(&head, "status")
            .and_then(DraftStatus::parse)
            .unwrap_or(DraftStatus::Draft);
        if current == DraftStatus::Approved {
            return Err(ReviewError::Conflict(format!(
                "the draft is approved; it cannot be {}",
                if to == DraftStatus::Dismissed {
                    "dismissed"
                } else {
                    "restored"
                }
            )));
        }
        if current != to {
            let (by_attr, at_attr) = match to {
                DraftStatus::Dismissed => ("dismissed_by", "dismissed_at"),
                _ => ("restored_by", "restored_at"),
            };
            let head_update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(self.key(keys::draft_head(ws, draft_id))))
                .update_expression("SET #st = :to, #by = :by, #at = :at, #up = :at")
                .condition_expression("#st = :from OR attribute_not_exists(#st)")
                .set_expression_attribute_names(Some(names(&[
                    ("#st", "status"),
                    ("#by", by_attr),
                    ("#at", at_attr),
                    ("#up", "updated_at"),
                ])))
                .expression_attribute_values(":to", attr::str(to.as_str()))
                .expression_attribute_values(":from", attr::str(current.as_str()))
                .expression_attribute_values(":by", attr::str(by))
                .expression_attribute_values(":at", attr::str(at))
                .build()
                .map_err(|e| StoreError::sdk("TransactWriteItems", e))?;
            let stats_update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(self.key(keys::draft_stats(ws, draft_id))))
                .update_expression("SET #st = :to")
                .expression_attribute_names("#st", "status")
                .expression_attribute_values(":to", attr::str(to.as_str()))
                .build()
                .map_err(|e| StoreError::sdk("TransactWriteItems", e))?;
            match self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().update(head_update).build())
                .transact_items(TransactWriteItem::builder().update(stats_update).build())
                .send()
                .await
            {
                Ok(_) => {}
                Err(SdkError::ServiceError(e))
                    if matches!(
                        e.err(),
                        TransactWriteItemsError::TransactionCanceledException(_)
                    ) =>
                {
                    return Err(ReviewError::Conflict(
                        "the draft changed while this action ran; reload and retry".into(),
                    ));
                }
                Err(e) => return Err(StoreError::sdk("TransactWriteItems", e).into()),
            }
        }
        self.get_draft(ws, draft_id)
            .await?
            .ok_or(ReviewError::NotFound)
    }

    pub async fn get_issue(
        &self,
        ws: &WorkspaceId,
        issue_id: &str,
    ) -> Result<Option<IssueView>, StoreError> {
        let Some(issue) = self.get(keys::issue(ws, issue_id)).await? else {
            return Ok(None);
        };
        let draft_id = attr::s(&issue, "draft_id").unwrap_or_default();
        let Some(draft) = self.get_draft(ws, draft_id).await? else {
            return Ok(None);
        };
        Ok(Some(IssueView {
            id: issue_id.to_owned(),
            draft_id: draft.id,
            title: attr::s(&issue, "title").unwrap_or_default().to_owned(),
            priority: attr::s(&issue, "priority")
                .and_then(Priority::parse)
                .unwrap_or(draft.priority),
            status: attr::s(&issue, "status")
                .and_then(IssueStatus::parse)
                .unwrap_or(IssueStatus::Open),
            posthog_status: attr::s(&issue, "posthog_status").map(str::to_owned),
            regressed: attr::b(&issue, "regressed").unwrap_or(false),
            occurrences: draft.occurrences,
            affected_users: draft.affected_users,
            first_seen: draft.first_seen,
            last_seen: draft.last_seen,
            links: draft.links,
            approved_by: attr::s(&issue, "approved_by")
                .unwrap_or_default()
                .to_owned(),
            created_at: attr::s(&issue, "created_at").unwrap_or_default().to_owned(),
            updated_at: attr::s(&issue, "updated_at").unwrap_or_default().to_owned(),
        }))
    }

    /// Applies PostHog's status word to every issue of `ws` that follows `posthog_issue_id`. Events
    /// older than the last one applied change nothing; resolving clears `regressed`.
    pub async fn apply_posthog_status(
        &self,
        ws: &WorkspaceId,
        posthog_issue_id: &str,
        posthog_word: &str,
        at_ms: i64,
        now: &str,
    ) -> Result<SyncedIssues, StoreError> {
        let Some(status) = IssueStatus::from_posthog(posthog_word) else {
            return Ok(SyncedIssues {
                issue_ids: Vec::new(),
            });
        };
        let word = posthog_word.trim().to_ascii_lowercase().replace(' ', "_");
        let links = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_values(
                ":pk",
                attr::str(keys::posthog_issue_link_pk(ws, posthog_issue_id)),
            )
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::sdk("Query", e))?;
        let mut synced = Vec::new();
        for link in links.items.unwrap_or_default() {
            let (Some(iid), Some(draft_id)) =
                (attr::s(&link, "issue_id"), attr::s(&link, "draft_id"))
            else {
                continue;
            };
            let mut set = vec!["#st = :st", "#ph = :ph", "#phat = :t", "#up = :now"];
            if status == IssueStatus::Resolved {
                set.push("#rg = :false");
            }
            let mut issue_update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(self.key(keys::issue(ws, iid))))
                .update_expression(format!("SET {}", set.join(", ")))
                .condition_expression(
                    "attribute_exists(PK) AND (attribute_not_exists(#phat) OR #phat <= :t)",
                )
                .expression_attribute_names("#st", "status")
                .expression_attribute_names("#ph", "posthog_status")
                .expression_attribute_names("#phat", "posthog_status_at")
                .expression_attribute_names("#up", "updated_at")
                .expression_attribute_values(":st", attr::str(status.as_str()))
                .expression_attribute_values(":ph", attr::str(&word))
                .expression_attribute_values(":t", attr::num(at_ms))
                .expression_attribute_values(":now", attr::str(now));
            if status == IssueStatus::Resolved {
                issue_update = issue_update
                    .expression_attribute_names("#rg", "regressed")
                    .expression_attribute_values(":false", AttributeValue::Bool(false));
            }
            let stats_update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(self.key(keys::draft_stats(ws, draft_id))))
                .update_expression("SET #is = :st")
                .expression_attribute_names("#is", "issue_state")
                .expression_attribute_values(":st", attr::str(status.as_str()))
                .build()
                .map_err(|e| StoreError::sdk("TransactWriteItems", e))?;
            let result = self
                .client
                .transact_write_items()
                .transact_items(
                    TransactWriteItem::builder()
                        .update(
                            issue_update
                                .build()
                                .map_err(|e| StoreError::sdk("TransactWriteItems", e))?,
                        )
                        .build(),
                )
                .transact_items(TransactWriteItem::builder().update(stats_update).build())
                .send()
                .await;
            match result {
                Ok(_) => synced.push(iid.to_owned()),
                // An older event than the one already applied: nothing to do.
                Err(SdkError::ServiceError(e))
                    if matches!(
                        e.err(),
                        TransactWriteItemsError::TransactionCanceledException(_)
                    ) => {}
                Err(e) => return Err(StoreError::sdk("TransactWriteItems", e)),
            }
        }
        Ok(SyncedIssues { issue_ids: synced })
    }
}
