//! Faults of the API behind the middleware: hang, reset, bodies that must pass through
//! untouched, 500/200 flips, 401 forever and 401 on the replay.

use super::*;

/// An API that hangs: the caller's own client timeout ends the call with reqwest's timeout
/// error (the layer adds nothing, fetches nothing more); the next call succeeds.
#[tokio::test]
async fn api_hang_is_the_callers_timeout_and_costs_no_fetch() {
    within(async {
        let server = serve(
            |n| token_answer(n, HOUR),
            |req| if req.n == 1 { Answer::Hang } else { echo(req) },
        )
        .await;
        let clock = ManualClock::new();
        let client = client(middleware(&server, &clock));

        let started = Instant::now();
        match get_err(&client, &server).await {
            reqwest_middleware::Error::Reqwest(e) => assert!(e.is_timeout(), "{e:?}"),
            other => panic!("not the client's timeout: {other:?}"),
        }
        assert!(started.elapsed() < TIMEOUT * 4);
        assert_eq!(get(&client, &server).await, (200, "Bearer tok-1".into()));
        assert_eq!((server.hits(TOKEN), server.hits(API)), (1, 2));
    })
    .await;
}

/// An API that resets the connection, or answers without HTTP: a reqwest error, no token
/// fetch, no replay; the next call succeeds with the same token.
#[tokio::test]
async fn api_reset_and_no_http_are_transport_errors_without_fetches() {
    within(async {
        let server = serve(
            |n| token_answer(n, HOUR),
            |req| match req.n {
                1 => Answer::Reset,
                2 => Answer::Bytes(b"220 smtp.example ESMTP\r\n".to_vec()),
                _ => echo(req),
            },
        )
        .await;
        let clock = ManualClock::new();
        let client = client(middleware(&server, &clock));

        for expected_api in [1, 2] {
            let err = get_err(&client, &server).await;
            assert!(
                matches!(err, reqwest_middleware::Error::Reqwest(_)),
                "not the api call's own error: {err:?}"
            );
            assert_eq!(server.hits(API), expected_api, "no replay of a failed call");
        }
        assert_eq!(get(&client, &server).await, (200, "Bearer tok-1".into()));
        assert_eq!((server.hits(TOKEN), server.hits(API)), (1, 3));
    })
    .await;
}

/// API answers sent byte by byte, very large, or as 200 with garbage reach the caller
/// exactly as sent: the layer neither buffers, caps nor parses them.
#[tokio::test]
async fn api_slow_oversize_and_garbage_bodies_pass_through() {
    let big: Vec<u8> = (0..(1usize << 20)).map(|i| (i % 251) as u8).collect();
    let garbage: Vec<u8> = vec![0xff, 0x00, b'{', 0x80, b'<', b'h'];
    let (big_sent, garbage_sent) = (big.clone(), garbage.clone());
    within(async move {
        let server = serve(
            |n| token_answer(n, HOUR),
            move |req| match req.n {
                1 => Answer::Slow {
                    head: head(200, "text/plain", 12),
                    body: b"slow answer!".to_vec(),
                    gap: Duration::from_millis(2),
                },
                2 => Answer::Bytes(response(200, "application/octet-stream", &big_sent)),
                _ => Answer::Bytes(response(200, "application/json", &garbage_sent)),
            },
        )
        .await;
        let clock = ManualClock::new();
        let client = client_with(reqwest::Client::new(), middleware(&server, &clock));

        let bodies: Vec<Vec<u8>> = {
            let mut out = Vec::new();
            for _ in 0..3 {
                let res = client.get(server.url(API)).send().await.expect("sent");
                assert_eq!(res.status(), 200);
                out.push(res.bytes().await.expect("read").to_vec());
            }
            out
        };
        assert_eq!(bodies[0], b"slow answer!");
        assert_eq!(bodies[1], big);
        assert_eq!(bodies[2], garbage);
        assert_eq!((server.hits(TOKEN), server.hits(API)), (1, 3));
    })
    .await;
}

/// An API flipping between 500 and 200 costs no token fetch: a 500 is not a rejection.
#[tokio::test]
async fn api_500_200_flips_cost_no_fetch() {
    within(async {
        let server = serve(
            |n| token_answer(n, HOUR),
            |req| {
                if req.n % 2 == 1 {
                    Answer::Bytes(response(500, "text/plain", "oops"))
                } else {
                    echo(req)
                }
            },
        )
        .await;
        let clock = ManualClock::new();
        let client = client(middleware(&server, &clock));

        for i in 1..=10u16 {
            let (status, _) = get(&client, &server).await;
            assert_eq!(status, if i % 2 == 1 { 500 } else { 200 });
        }
        assert_eq!((server.hits(TOKEN), server.hits(API)), (1, 10));
    })
    .await;
}

/// An API that rejects every token, fresh ones included: 20 requests cost two token
/// fetches (the first, and one after the first rejection; later rejections fall in the
/// cool-down) and 21 API calls (one replay, for the first rejection), and every caller gets
/// the 401. Once the cool-down has passed, one rejection fetches again, once.
#[tokio::test]
async fn api_401_forever_costs_bounded_fetches() {
    within(async {
        let server = serve(|n| token_answer(n, HOUR), |_| unauthorized()).await;
        let clock = ManualClock::new();
        let client = client(middleware(&server, &clock));

        for _ in 0..20 {
            let (status, _) = get(&client, &server).await;
            assert_eq!(status, 401, "the rejection goes back to the caller");
        }
        assert_eq!(
            (server.hits(TOKEN), server.hits(API)),
            (2, 21),
            "(token fetches, api calls) for 20 requests to an api that rejects every token"
        );

        clock.advance(DEFAULT_REJECTION_COOLDOWN);
        let (status, _) = get(&client, &server).await;
        assert_eq!(status, 401);
        assert_eq!((server.hits(TOKEN), server.hits(API)), (3, 23));
    })
    .await;
}

/// A 401 to the request and to its replay: the caller gets the second 401, exactly two
/// fetches and two API calls (one replay, never a loop); the next request uses the token
/// the replay fetched.
#[tokio::test]
async fn api_401_on_the_replay_is_returned_without_a_loop() {
    within(async {
        let server = serve(
            |n| token_answer(n, HOUR),
            |req| {
                if req.n <= 2 {
                    unauthorized()
                } else {
                    echo(req)
                }
            },
        )
        .await;
        let clock = ManualClock::new();
        let client = client(middleware(&server, &clock));

        let (status, body) = get(&client, &server).await;
        assert_eq!(
            (status, body.as_str()),
            (401, r#"{"error":"invalid_token"}"#)
        );
        assert_eq!((server.hits(TOKEN), server.hits(API)), (2, 2));

        assert_eq!(get(&client, &server).await, (200, "Bearer tok-2".into()));
        assert_eq!((server.hits(TOKEN), server.hits(API)), (2, 3));
    })
    .await;
}
