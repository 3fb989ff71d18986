use super::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};

/// A client socket and, on the executor, its server end in the set.
fn pair(listener: &TcpListener) -> (ReadyStream, StdTcpStream) {
    let client = StdTcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (ReadyStream::adopt(OwnedFd::from(server)).unwrap(), client)
}

fn run<T>(test: impl std::future::Future<Output = T> + 'static) -> T {
    glommio::LocalExecutorBuilder::default()
        .make()
        .unwrap()
        .run(test)
}

#[test]
fn a_waiting_read_wakes_when_bytes_arrive_and_sees_them_in_order() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (mut stream, mut client) = pair(&listener);
        let writer = std::thread::spawn(move || {
            for part in [&b"first "[..], b"second"] {
                std::thread::sleep(Duration::from_millis(30));
                client.write_all(part).unwrap();
            }
            client
        });
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while got.len() < 12 {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "no end of stream before the client closes");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"first second");
        drop(writer.join().unwrap());
        assert_eq!(
            stream.read(&mut buf).await.unwrap(),
            0,
            "the hang-up is seen"
        );
    });
}

#[test]
fn a_write_into_a_full_socket_waits_until_the_client_reads() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (mut stream, mut client) = pair(&listener);
        let total = 16 << 20;
        let reader = std::thread::spawn(move || {
            // Start late, so the server's writes find the socket full and wait.
            std::thread::sleep(Duration::from_millis(100));
            let mut got = Vec::new();
            client.read_to_end(&mut got).unwrap();
            got
        });
        let payload: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
        stream.write_all(&payload).await.unwrap();
        stream.close().await.unwrap();
        drop(stream);
        let got = reader.join().unwrap();
        assert_eq!(got.len(), total);
        assert!(got == payload, "every byte arrives, in order");
    });
}

#[test]
fn more_waiting_sockets_than_one_batch_are_each_woken_and_a_dropped_one_frees_its_slot() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let count = EVENT_BATCH + 44;
        let (streams, clients): (Vec<_>, Vec<_>) = (0..count).map(|_| pair(&listener)).unzip();
        let readers: Vec<_> = streams
            .into_iter()
            .enumerate()
            .map(|(i, mut stream)| {
                glommio::spawn_local(async move {
                    let mut buf = [0u8; 8];
                    let n = stream.read(&mut buf).await.unwrap();
                    assert_eq!(&buf[..n], (i as u64).to_le_bytes().as_slice());
                    stream
                })
            })
            .collect();
        glommio::timer::sleep(Duration::from_millis(20)).await;
        for (i, mut client) in clients.iter().enumerate() {
            client.write_all(&(i as u64).to_le_bytes()).unwrap();
        }
        let mut streams = Vec::new();
        for reader in readers {
            streams.push(reader.await);
        }
        streams.truncate(count / 2);
        // A new socket takes a freed slot (the set does not grow) and is served.
        let (mut fresh, mut fresh_client) = pair(&listener);
        assert_eq!(fresh.set.slots.borrow().entries.len(), count);
        let nothing_yet = futures_lite::future::or(
            async {
                let mut buf = [0u8; 1];
                Some(fresh.read(&mut buf).await.unwrap())
            },
            async {
                glommio::timer::sleep(Duration::from_millis(50)).await;
                None
            },
        )
        .await;
        assert_eq!(
            nothing_yet, None,
            "a socket nobody wrote to is not readable"
        );
        fresh_client.write_all(b"x").unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(fresh.read(&mut buf).await.unwrap(), 1);
        drop(clients);
        for mut stream in streams {
            let mut buf = [0u8; 8];
            assert_eq!(stream.read(&mut buf).await.unwrap(), 0);
        }
    });
}

#[test]
fn closing_shuts_the_write_side_and_a_duplicate_keeps_the_socket() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (stream, mut client) = pair(&listener);
        let duplicate = crate::net::raw::RawSocket::duplicate(&stream).unwrap();
        drop(stream);
        // The duplicate still sends, and the dropped stream's set no longer holds it.
        let sent = duplicate.send([&bytes::Bytes::from_static(b"still here")]);
        assert_eq!(sent.unwrap(), 10);
        let mut buf = [0u8; 10];
        client.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"still here");
        drop(duplicate);
        assert_eq!(client.read(&mut buf).unwrap(), 0);

        let (mut stream, mut client) = pair(&listener);
        stream.write_all(b"bye").await.unwrap();
        stream.close().await.unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"bye", "the client sees the answer, then the end");
    });
}

#[test]
fn a_coalesced_task_sends_what_one_poll_wrote_when_the_poll_ends() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (mut stream, mut client) = pair(&listener);
        let writes = stream.coalescing();
        let task = writes.around(async move {
            for part in [&b"one "[..], b"two ", b"three"] {
                stream.write_all(part).await.unwrap();
            }
            stream.flush().await.unwrap();
            // Still running: only the end of this poll can have sent the parts.
            glommio::timer::sleep(Duration::from_secs(2)).await;
            stream
        });
        let reader = std::thread::spawn(move || {
            client
                .set_read_timeout(Some(Duration::from_secs(1)))
                .unwrap();
            let mut got = [0u8; 13];
            client.read_exact(&mut got).map(|()| got)
        });
        let (_stream, got) = futures_lite::future::zip(task, async {
            while !reader.is_finished() {
                glommio::timer::sleep(Duration::from_millis(5)).await;
            }
            reader.join().unwrap()
        })
        .await;
        assert_eq!(
            &got.expect("the parts arrive while the task waits"),
            b"one two three"
        );
    });
}

#[test]
fn a_coalesced_task_writing_more_than_the_client_reads_is_held_back_and_loses_nothing() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (mut stream, mut client) = pair(&listener);
        let total = 8 << 20;
        let payload: Vec<u8> = (0..total).map(|i| (i % 249) as u8).collect();
        let expected = payload.clone();
        let reader = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            let mut got = Vec::new();
            client.read_to_end(&mut got).unwrap();
            got
        });
        let writes = stream.coalescing();
        let outbox = writes.0.clone();
        writes
            .around(async move {
                for piece in payload.chunks(1000) {
                    stream.write_all(piece).await.unwrap();
                    assert!(
                        outbox.outbox.borrow().len() <= OUTBOX_LIMIT + 1000,
                        "the outbox stays bounded while the client does not read"
                    );
                }
                stream.close().await.unwrap();
            })
            .await;
        let got = reader.join().unwrap();
        assert_eq!(got.len(), total);
        assert!(got == expected, "every byte arrives, in order");
    });
}

#[test]
fn a_dropped_coalescing_stream_sends_what_it_held() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (mut stream, mut client) = pair(&listener);
        let writes = stream.coalescing();
        writes
            .around(async move {
                stream.write_all(b"last words").await.unwrap();
                drop(stream);
            })
            .await;
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"last words");
    });
}
