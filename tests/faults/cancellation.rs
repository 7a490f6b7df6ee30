//! A caller cancelled at every await point.

use super::*;

/// A waker that counts its wake-ups.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Polls `fut` by hand up to `polls` times, each after the previous poll's wake-up (real
/// time passes in between, so I/O progresses); returns whether it finished.
async fn poll_times<F: Future>(fut: &mut Pin<Box<F>>, polls: usize) -> bool {
    let counter = Arc::new(CountingWaker::default());
    let waker = Waker::from(Arc::clone(&counter));
    let mut cx = Context::from_waker(&waker);
    for _ in 0..polls {
        let seen = counter.0.load(Ordering::SeqCst);
        if fut.as_mut().poll(&mut cx).is_ready() {
            return true;
        }
        while counter.0.load(Ordering::SeqCst) == seen {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    false
}

/// A server for the cancellation test: the token endpoint answers after a pause, the API
/// rejects its first request and accepts the rest, after a pause too, so a call passes
/// every await point: the token fetch, the API call, the rejection's fetch, the replay.
async fn cancellation_server() -> RawServer {
    let pause = Duration::from_millis(15);
    serve(
        move |n| {
            let body = token_body(&format!("tok-{n}"), HOUR);
            Answer::Delayed {
                head: Vec::new(),
                delay: pause,
                body: response(200, "application/json", body),
            }
        },
        move |req| {
            let answer = match req.n {
                1 => response(401, "application/json", r#"{"error":"invalid_token"}"#),
                _ => response(200, "text/plain", req.header("authorization").unwrap_or("")),
            };
            Answer::Delayed {
                head: Vec::new(),
                delay: pause,
                body: answer,
            }
        },
    )
    .await
}

/// A caller dropped after k polls, for every k from 0 to the polls a whole call takes:
/// afterwards the next call succeeds, and once everything is dropped the runtime has no
/// more tasks alive than before (no flight, connection or timer task leaks).
#[tokio::test]
async fn cancelled_caller_at_every_await_point() {
    within(async {
        let baseline = alive_tasks();

        // How many polls a whole call takes: the await points to cancel at.
        let polls = {
            let server = cancellation_server().await;
            let clock = ManualClock::new();
            let client = client(middleware(&server, &clock));
            let mut call = Box::pin(client.get(server.url(API)).send());
            let mut polls = 0;
            while !poll_times(&mut call, 1).await {
                polls += 1;
                assert!(polls < 200, "a call that never finishes");
            }
            polls + 1
        };
        assert!(
            polls >= 2,
            "the call should wait at least once ({polls} polls)"
        );
        assert_eq!(
            settle_to(baseline).await,
            baseline,
            "tasks leaked by a whole call"
        );

        for k in 0..polls {
            let server = cancellation_server().await;
            let clock = ManualClock::new();
            let client = client(middleware(&server, &clock));

            let mut call = Box::pin(client.get(server.url(API)).send());
            let finished = poll_times(&mut call, k).await;
            drop(call);
            // Timing may let a call finish in fewer polls than the measured run: then there
            // was nothing to cancel, and the checks below still hold.
            let _ = finished;

            let (status, body) = get(&client, &server).await;
            assert_eq!(status, 200, "after a cancel at poll {k}: {body}");
            assert!(body.starts_with("Bearer tok-"), "{body}");
            assert!(
                server.hits(TOKEN) <= 2,
                "cancel at poll {k}: {} token fetches",
                server.hits(TOKEN)
            );

            drop(client);
            drop(server);
            let alive = settle_to(baseline).await;
            assert_eq!(alive, baseline, "tasks leaked after a cancel at poll {k}");
        }
    })
    .await;
}
