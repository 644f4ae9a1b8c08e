//! Worker launch on EAL lcores. One test in its own process: the thread
//! that starts EAL becomes the main lcore, and only it may launch workers.
mod eal_util;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use dataplane::buf::PacketBuf;
use dataplane::dpdk::{lcore_id, Eal, Mempool, Port, PortConfig, RxBurst, TxBuffer};

#[test]
fn worker_lcore_runs_a_polling_job() {
    let eal = Eal::init(&eal_util::eal_args("0-1")).expect("EAL on two lcores");
    assert!(Eal::init(&eal_util::eal_args("0")).is_err(), "EAL starts once per process");
    let workers = eal.worker_lcores();
    assert_eq!(workers, vec![1]);
    assert_eq!(eal.main_lcore(), 0);

    let mp = Mempool::new("pool_lcore", 511, 32, 2048 + 128, -1).unwrap();
    let mut port = Port::attach_vdev("net_ring_l0", "").unwrap();
    port.configure(
        &PortConfig { rx_queues: 1, tx_queues: 1, rx_desc: 256, tx_desc: 256, ..Default::default() },
        &mp,
    )
    .unwrap();
    port.start().unwrap();
    // The main lcore sends, the worker receives and checks.
    let mut rx = port.rx_queue(0).unwrap();
    let seen = Arc::new(AtomicU32::new(0));
    let seen_w = seen.clone();
    eal.launch(1, move || {
        let mut burst = RxBurst::default();
        let mut n = 0;
        let start = std::time::Instant::now();
        while n < 10 && start.elapsed().as_secs() < 5 {
            burst.receive(&mut rx);
            for m in burst.by_ref() {
                if m.data().len() == 70 {
                    n += 1;
                }
            }
        }
        seen_w.store(lcore_id(), Ordering::SeqCst);
        n
    })
    .unwrap();
    let mut tx = port.tx_queue(0).unwrap();
    let mut txb = TxBuffer::default();
    for i in 0..10 {
        let mut m = mp.alloc().unwrap();
        assert!(m.set_bytes(&eal_util::frame(i, 70)));
        txb.push(m, &mut tx);
    }
    txb.flush(&mut tx);
    assert_eq!(eal.wait(1), 10, "the worker received all ten packets");
    assert_eq!(seen.load(Ordering::SeqCst), 1, "the job ran on lcore 1");
    drop(port);
    assert_eq!(mp.in_use(), 0);
}
