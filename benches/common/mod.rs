//! Pieces shared by the benchmarks and by `tests/allocations.rs`: an in-memory token source,
//! the two minimal layers that set the floor a `reqwest-middleware` layer can reach (a bearer
//! header from an `ArcSwap`, a static header), and a terminal layer that answers without I/O.
#![allow(dead_code)]

use std::time::Duration;

use arc_swap::ArcSwap;
use http::header::AUTHORIZATION;
use http::{Extensions, HeaderValue};
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};
use reqwest_partner_auth::{async_trait, Error, FetchContext, Token, TokenSource};

/// The token [`InMemorySource`] mints.
pub(crate) const TOKEN: &str = "bench-token-0123456789abcdef";

/// A source that mints a one-hour token in memory: no token endpoint in the measurement.
#[derive(Debug)]
pub(crate) struct InMemorySource;

#[async_trait]
impl TokenSource for InMemorySource {
    async fn fetch(&self, _cx: &FetchContext) -> Result<Token, Error> {
        Ok(Token::bearer(TOKEN)?.expires_in(Duration::from_secs(3600)))
    }
}

/// The floor for a bearer layer: one lock-free load, one header insert, `next.run`.
pub(crate) struct ArcSwapBearer(pub ArcSwap<HeaderValue>);

#[async_trait]
impl Middleware for ArcSwapBearer {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let value = HeaderValue::clone(&self.0.load());
        req.headers_mut().insert(AUTHORIZATION, value);
        next.run(req, extensions).await
    }
}

/// The floor for a static-header layer: one clone, one insert, `next.run`.
pub(crate) struct StaticHeader(pub HeaderValue);

#[async_trait]
impl Middleware for StaticHeader {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        req.headers_mut().insert(AUTHORIZATION, self.0.clone());
        next.run(req, extensions).await
    }
}

/// `Authorization: <scheme> <value>`, marked sensitive, built at run time as the crate builds
/// its own: shared, reference-counted bytes (a `from_static` value would clone for free and
/// set the floor too low).
pub(crate) fn auth_header(scheme: &str, value: &str) -> HeaderValue {
    let mut header = HeaderValue::try_from(format!("{scheme} {value}")).expect("legal header");
    header.set_sensitive(true);
    header
}

/// The last layer of a chain without I/O: answers `200` when the request carries an
/// `Authorization` header and `204` when not (so a check can see that a layer did its work),
/// and never calls `next`.
pub(crate) struct Canned;

#[async_trait]
impl Middleware for Canned {
    async fn handle(
        &self,
        req: Request,
        _extensions: &mut Extensions,
        _next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let status = if req.headers().contains_key(AUTHORIZATION) {
            200
        } else {
            204
        };
        std::hint::black_box(&req);
        let res = http::Response::builder()
            .status(status)
            .body(bytes::Bytes::from_static(b"{}"))
            .expect("canned response");
        Ok(Response::from(res))
    }
}
