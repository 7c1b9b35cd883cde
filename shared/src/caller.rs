//! Who calls a dashboard route: API Gateway's JWT authorizer validated the token and passes its claims
//! in the request context; `make run` passes them the same way after verifying a local HS256 token.

use crate::ids::WorkspaceId;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub workspace_id: WorkspaceId,
    /// The user (`sub`), recorded on approve, dismiss, restore and connect.
    pub user: String,
}

/// `None` when the request carries no usable `workspace_id` / `sub` claims: answer 401.
pub fn caller(req: &Request) -> Option<Caller> {
    let RequestContext::ApiGatewayV2(ctx) = req.request_context_ref()? else {
        return None;
    };
    let claims = &ctx.authorizer.as_ref()?.jwt.as_ref()?.claims;
    let workspace_id = WorkspaceId::parse(claims.get("workspace_id")?).ok()?;
    let user = claims
        .get("sub")
        .filter(|s| !s.is_empty() && s.len() <= 256)?
        .clone();
    Some(Caller { workspace_id, user })
}
