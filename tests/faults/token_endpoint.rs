//! Faults of the token endpoint: hang, reset, byte-by-byte and oversize bodies, garbage,
//! 500/200 flips, and the fetch deadline.

use super::*;

/// A token endpoint that accepts the connection and never answers: the caller gets a typed
/// timeout within the token client's timeout, and the next call (the endpoint answering
/// again) succeeds.
#[tokio::test]
async fn token_endpoint_hang_is_a_typed_timeout_then_recovers() {
    within(async {
        let server = serve(
            |n| {
                if n == 1 {
                    Answer::Hang
                } else {
                    token_answer(n, HOUR)
                }
            },
            echo,
        )
        .await;
        let clock = ManualClock::new();
        let client = client(middleware(&server, &clock).retry_policy(RetryPolicy::none()));

        let started = Instant::now();
        let err = crate_error(&get_err(&client, &server).await);
        assert!(is_timeout(&err), "not a typed timeout: {err:?}");
        assert!(
            started.elapsed() < TIMEOUT * 4,
            "the timeout took {:?}",
            started.elapsed()
        );
        assert_eq!(server.hits(API), 0, "no api call without a token");

        assert_eq!(get(&client, &server).await, (200, "Bearer tok-2".into()));
        assert_eq!((server.hits(TOKEN), server.hits(API)), (2, 1));
    })
    .await;
}

/// A hanging token endpoint with retries: each attempt times out, the attempts are bounded
/// (three), and the whole call ends in a typed timeout well within the hard limit.
#[tokio::test]
async fn token_endpoint_hang_with_retries_is_bounded() {
    within(async {
        let server = serve(|_| Answer::Hang, echo).await;
        let clock = ManualClock::new();
        let client = client(middleware(&server, &clock));

        let started = Instant::now();
        let err = crate_error(&get_err(&client, &server).await);
        assert!(is_timeout(&err), "not a typed timeout: {err:?}");
        assert!(started.elapsed() < TIMEOUT * 3 + secs(2));
        assert_eq!(server.hits(TOKEN), 3);
        assert_eq!(server.hits(API), 0);
    })
    .await;
}

/// A token endpoint that hangs behind a client with no timeout of its own: the cache's fetch
/// deadline ends the wait with a typed `FetchTimeout`, and the next caller starts a new
/// fetch, which succeeds.
#[tokio::test]
async fn fetch_deadline_bounds_a_hanging_token_endpoint() {
    within(async {
        let server = serve(
            |n| {
                if n == 1 {
                    Answer::Hang
                } else {
                    token_answer(n, HOUR)
                }
            },
            echo,
        )
        .await;
        let clock = ManualClock::new();
        let slow = HttpTokenSource::post(server.url(TOKEN))
            .param("client_secret", Param::secret(SECRET))
            .http_client(reqwest::Client::new())
            .timeout(secs(60))
            .add_origin(&server.base());
        let mw = on_clock(AuthMiddleware::builder(slow), &clock).fetch_deadline(TIMEOUT);
        let client = client(mw);

        let started = Instant::now();
        let err = crate_error(&get_err(&client, &server).await);
        assert!(
            matches!(err, Error::FetchTimeout { deadline } if deadline == TIMEOUT),
            "not the fetch deadline: {err:?}"
        );
        assert!(
            started.elapsed() < TIMEOUT * 4,
            "took {:?}",
            started.elapsed()
        );

        assert_eq!(get(&client, &server).await, (200, "Bearer tok-2".into()));
        assert_eq!((server.hits(TOKEN), server.hits(API)), (2, 1));
    })
    .await;
}

/// A token endpoint that hangs while the current token is still valid (inside the skew
/// window): past the fetch deadline the request goes out with the current token. The token
/// request's own timeout (a minute) is far beyond the test's limit: only the deadline ends
/// the wait.
#[tokio::test]
async fn fetch_deadline_serves_the_valid_token_while_the_endpoint_hangs() {
    within(async {
        let server = serve(
            |n| {
                if n == 2 {
                    Answer::Hang
                } else {
                    token_answer(n, HOUR)
                }
            },
            echo,
        )
        .await;
        let clock = ManualClock::new();
        let patient = source(&server).timeout(secs(60));
        let mw = on_clock(AuthMiddleware::builder(patient), &clock)
            .refresh_ahead(0.0)
            .retry_policy(RetryPolicy::none())
            .fetch_deadline(Duration::from_millis(200));
        let client = client(mw);

        assert_eq!(get(&client, &server).await, (200, "Bearer tok-1".into()));
        clock.advance(secs(HOUR - 10));
        let started = Instant::now();
        assert_eq!(get(&client, &server).await, (200, "Bearer tok-1".into()));
        assert!(
            started.elapsed() < TIMEOUT * 4,
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(server.hits(TOKEN), 2);

        assert_eq!(get(&client, &server).await, (200, "Bearer tok-3".into()));
        assert_eq!((server.hits(TOKEN), server.hits(API)), (3, 3));
    })
    .await;
}

/// A token endpoint that resets the connection: a typed transport error after the bounded
/// retries (three attempts), then recovery once it answers.
#[tokio::test]
async fn token_endpoint_reset_is_a_typed_transport_error_then_recovers() {
    within(async {
        let server = serve(
            |n| {
                if n <= 3 {
                    Answer::Reset
                } else {
                    token_answer(n, HOUR)
                }
            },
            echo,
        )
        .await;
        let clock = ManualClock::new();
        let client = client(middleware(&server, &clock));

        let err = crate_error(&get_err(&client, &server).await);
        assert!(
            matches!(err, Error::Transport { .. }),
            "not a transport error: {err:?}"
        );
        assert_eq!(server.hits(TOKEN), 3);

        assert_eq!(get(&client, &server).await, (200, "Bearer tok-4".into()));
        assert_eq!((server.hits(TOKEN), server.hits(API)), (4, 1));
    })
    .await;
}

/// A token answer sent one byte at a time is read whole; one so slow that it outlasts the
/// token timeout is a typed timeout, not a hang.
#[tokio::test]
async fn token_endpoint_byte_by_byte_body() {
    within(async {
        let server = serve(
            |n| {
                let body = token_body(&format!("tok-{n}"), 60).into_bytes();
                let gap = if n == 1 {
                    Duration::from_millis(1)
                } else {
                    Duration::from_millis(100)
                };
                Answer::Slow {
                    head: head(200, "application/json", body.len()),
                    body,
                    gap,
                }
            },
            echo,
        )
        .await;
        let clock = ManualClock::new();
        // A generous token timeout for the answer that trickles in fast enough, so a loaded
        // machine does not turn it into a timeout; the short one for the answer that does not.
        let patient = AuthMiddleware::builder(source(&server).timeout(secs(10)));
        let patient = client(on_clock(patient, &clock).retry_policy(RetryPolicy::none()));
        let client = client(middleware(&server, &clock).retry_policy(RetryPolicy::none()));

        assert_eq!(get(&patient, &server).await, (200, "Bearer tok-1".into()));

        let started = Instant::now();
        let err = crate_error(&get_err(&client, &server).await);
        assert!(is_timeout(&err), "not a typed timeout: {err:?}");
        assert!(started.elapsed() < TIMEOUT * 4);
        assert_eq!((server.hits(TOKEN), server.hits(API)), (2, 1));
    })
    .await;
}

/// An answer larger than the body cap, announced by its length or streamed without end, is
/// a typed `TooLarge` (not retried, read no further than the cap); the next answer works.
#[tokio::test]
async fn token_endpoint_oversize_body_is_too_large() {
    within(async {
        let server = serve(
            |n| match n {
                1 => Answer::Bytes(head(200, "application/json", 1 << 20)),
                2 => Answer::Endless {
                    head: chunked_head(200, "application/json"),
                },
                _ => token_answer(n, HOUR),
            },
            echo,
        )
        .await;
        let clock = ManualClock::new();
        let client = client(middleware(&server, &clock));

        for expected_hits in [1, 2] {
            let err = crate_error(&get_err(&client, &server).await);
            assert!(
                matches!(
                    err,
                    Error::MalformedResponse(Malformed::TooLarge { limit }) if limit == DEFAULT_MAX_BODY
                ),
                "not TooLarge: {err:?}"
            );
            assert_eq!(server.hits(TOKEN), expected_hits, "a too-large answer is not retried");
        }
        assert_eq!(get(&client, &server).await, (200, "Bearer tok-3".into()));
        assert_eq!((server.hits(TOKEN), server.hits(API)), (3, 1));
    })
    .await;
}

/// Garbage with a 200: each is a typed `MalformedResponse`, exactly one fetch each (a
/// malformed answer is not retried), and a good answer afterwards is used.
#[tokio::test]
async fn token_endpoint_200_with_garbage_is_malformed() {
    let garbage: Vec<(&str, Vec<u8>)> = vec![
        ("application/json", b"".to_vec()),
        ("application/json", b"   \r\n".to_vec()),
        ("application/json", b"\xff\xfe\x00garbage\x80".to_vec()),
        (
            "text/html",
            b"<html><body>maintenance</body></html>".to_vec(),
        ),
        ("application/json", b"<!doctype html>".to_vec()),
        ("application/json", b"null".to_vec()),
        ("application/json", b"[\"tok\"]".to_vec()),
        ("application/json", b"{}".to_vec()),
        ("application/json", br#"{"access_token":5}"#.to_vec()),
        ("application/json", br#"{"access_token":""}"#.to_vec()),
        (
            "application/json",
            br#"{"access_token":"a\r\nx-evil: 1"}"#.to_vec(),
        ),
        (
            "application/json",
            br#"{"access_token":"t","token_type":"mac"}"#.to_vec(),
        ),
        (
            "application/json",
            br#"{"access_token":"t","expires_in":"soon"}"#.to_vec(),
        ),
        (
            "application/json",
            br#"{"access_token":"t","expires_in":1e999}"#.to_vec(),
        ),
        ("application/json", br#"{"access_token":"t""#.to_vec()),
        (
            "application/x-www-form-urlencoded",
            b"access_token=t&token_type=bearer&expires_in=3600".to_vec(),
        ),
        ("text/plain", b"tok-plain".to_vec()),
    ];
    let count = garbage.len();
    within(async move {
        let answers = garbage.clone();
        let server = serve(
            move |n| match answers.get(n - 1) {
                Some((content_type, body)) => Answer::Bytes(response(200, content_type, body)),
                None => token_answer(n, HOUR),
            },
            echo,
        )
        .await;
        let clock = ManualClock::new();
        let client = client(middleware(&server, &clock));

        for (i, (content_type, body)) in garbage.iter().enumerate() {
            let err = crate_error(&get_err(&client, &server).await);
            assert!(
                matches!(err, Error::MalformedResponse(_)),
                "{content_type} {:?}: not malformed: {err:?}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(
                server.hits(TOKEN),
                i + 1,
                "a malformed answer is not retried"
            );
        }
        let expected = format!("Bearer tok-{}", count + 1);
        assert_eq!(get(&client, &server).await, (200, expected));
        assert_eq!((server.hits(TOKEN), server.hits(API)), (count + 1, 1));
    })
    .await;
}

/// A token endpoint that does not speak HTTP at all: a typed transport error.
#[tokio::test]
async fn token_endpoint_speaking_no_http_is_a_transport_error() {
    within(async {
        let server = serve(
            |_| Answer::Bytes(b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec()),
            echo,
        )
        .await;
        let clock = ManualClock::new();
        let client = client(middleware(&server, &clock).retry_policy(RetryPolicy::none()));

        let err = crate_error(&get_err(&client, &server).await);
        assert!(
            matches!(err, Error::Transport { .. }),
            "not a transport error: {err:?}"
        );
        assert_eq!((server.hits(TOKEN), server.hits(API)), (1, 0));
    })
    .await;
}

/// A token endpoint flipping between 500 and 200: with retries each 500 is followed by the
/// 200 (two fetches per token); without, the 500 is a typed `TokenEndpoint` error and the
/// next call recovers. Exact counts: nothing loops.
#[tokio::test]
async fn token_endpoint_500_200_flips() {
    within(async {
        let server = serve(
            |n| {
                if n % 2 == 1 {
                    Answer::Bytes(response(
                        500,
                        "application/json",
                        r#"{"error":"server_error"}"#,
                    ))
                } else {
                    token_answer(n, 60)
                }
            },
            echo,
        )
        .await;
        let clock = ManualClock::new();
        let client = client(middleware(&server, &clock).refresh_ahead(0.0));

        assert_eq!(get(&client, &server).await, (200, "Bearer tok-2".into()));
        assert_eq!(server.hits(TOKEN), 2);
        assert_eq!(get(&client, &server).await, (200, "Bearer tok-2".into()));
        assert_eq!(server.hits(TOKEN), 2);

        clock.advance(secs(61));
        assert_eq!(get(&client, &server).await, (200, "Bearer tok-4".into()));
        assert_eq!((server.hits(TOKEN), server.hits(API)), (4, 3));

        // Without retries: the 500 reaches the caller, typed, and the cache recovers.
        let once = client_with(
            short_timeout_client(),
            middleware(&server, &clock)
                .refresh_ahead(0.0)
                .retry_policy(RetryPolicy::none()),
        );
        let err = crate_error(&get_err(&once, &server).await);
        assert!(
            matches!(err, Error::TokenEndpoint { status, .. } if status == 500),
            "not a typed 500: {err:?}"
        );
        assert!(err.is_transient());
        assert_eq!(server.hits(TOKEN), 5);
        assert_eq!(get(&once, &server).await, (200, "Bearer tok-6".into()));
        assert_eq!((server.hits(TOKEN), server.hits(API)), (6, 4));
    })
    .await;
}

/// A 500 while the current token is still valid (inside the skew window) does not fail the
/// request: the current token is served, and the next request's fetch recovers.
#[tokio::test]
async fn token_endpoint_500_while_the_token_is_valid_serves_it() {
    within(async {
        let server = serve(
            |n| match n {
                2 => Answer::Bytes(response(500, "application/json", r#"{"error":"x"}"#)),
                _ => token_answer(n, HOUR),
            },
            echo,
        )
        .await;
        let clock = ManualClock::new();
        let mw = middleware(&server, &clock)
            .refresh_ahead(0.0)
            .retry_policy(RetryPolicy::none());
        let client = client(mw);

        assert_eq!(get(&client, &server).await, (200, "Bearer tok-1".into()));
        clock.advance(secs(HOUR - 10));
        assert_eq!(get(&client, &server).await, (200, "Bearer tok-1".into()));
        assert_eq!(server.hits(TOKEN), 2);
        assert_eq!(get(&client, &server).await, (200, "Bearer tok-3".into()));
        assert_eq!((server.hits(TOKEN), server.hits(API)), (3, 3));
    })
    .await;
}
