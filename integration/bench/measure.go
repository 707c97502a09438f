package main

import (
	"context"
	"os"
	"slices"
	"sync"
	"time"
)

// rotate is s starting at its i-th element (mod len), so that each turn
// takes each place in the round equally often.
func rotate(s []string, i int) []string {
	k := i % len(s)
	return append(slices.Clone(s[k:]), s[:k]...)
}

func (b *bench) measure(n int) (*results, error) {
	ctx := context.Background()
	order := func(i int) []string { return rotate(handlers, i) }
	withFloor := append(slices.Clone(handlers), floorTurn)
	turn := func(h string, start func() error) error {
		if h == floorTurn {
			return b.floorCycle(ctx)
		}
		return start()
	}
	res := &results{Pods: n, HandlerOrder: handlers, Handlers: map[string]result{}, Memory: map[string][][2]float64{}}

	// Warm up every path (image unpack, CNI, first shim) untimed.
	for _, h := range handlers {
		if err := b.startPod(ctx, h, false, true, "warmup"); err != nil {
			return nil, err
		}
	}
	if err := b.teardownLive(ctx, false); err != nil {
		return nil, err
	}

	// Host-network sandboxes: start and remove, one at a time.
	hostRounds := min(n, 20)
	for i := 0; i < hostRounds; i++ {
		for _, h := range order(i) {
			if err := b.startPod(ctx, h, true, false, "sandbox_ready_hostnet"); err != nil {
				return nil, err
			}
		}
		if err := b.teardownLive(ctx, false); err != nil {
			return nil, err
		}
	}

	// Pods with the test CNI and one container, up to n live per handler;
	// a CNI floor cycle takes its turn in each round.
	checkpoints := map[int]bool{1: true, 10: true, n / 4: true, n / 2: true, n: true}
	for i := 0; i < n; i++ {
		for _, h := range rotate(withFloor, i) {
			if err := turn(h, func() error { return b.startPod(ctx, h, false, true, "sandbox_ready") }); err != nil {
				return nil, err
			}
		}
		if i+1 == 10 && n > 10 {
			if err := b.probe(ctx, order, "probe_at_10"); err != nil {
				return nil, err
			}
		}
		if i+1 == n {
			if err := b.probe(ctx, order, "probe_at_n"); err != nil {
				return nil, err
			}
		}
		if checkpoints[i+1] {
			for _, h := range handlers {
				m, err := b.memory(ctx, h)
				if err != nil {
					return nil, err
				}
				res.Memory[h] = append(res.Memory[h], [2]float64{float64(i + 1), m.pssPerPod})
				if i+1 == n {
					r := res.Handlers[h]
					r.PSSPerPodKB, r.PausePSSKB, r.ThreadsPerShim, r.Shims = m.pssPerPod, m.pausePSS, m.threads, m.shims
					res.Handlers[h] = r
				}
			}
		}
	}

	// Teardown of the n pods, alternating handlers and the floor.
	var byHandler = map[string][]livePod{}
	for _, p := range b.live {
		byHandler[p.handler] = append(byHandler[p.handler], p)
	}
	b.live = nil
	for i := 0; i < n; i++ {
		for _, h := range rotate(withFloor, i) {
			if err := turn(h, func() error {
				if i < len(byHandler[h]) {
					return b.stopPod(ctx, byHandler[h][i], true)
				}
				return nil
			}); err != nil {
				return nil, err
			}
		}
	}
	b.removeAll()

	// Throughput: n sandboxes by 8 concurrent clients, per handler.
	for _, h := range handlers {
		pps, err := b.throughput(ctx, h, n, 8)
		if err != nil {
			return nil, err
		}
		r := res.Handlers[h]
		r.PodsPerS = pps
		res.Handlers[h] = r
		if err := b.teardownLive(ctx, false); err != nil {
			return nil, err
		}
	}

	times, err := b.logTimes()
	if err != nil {
		return nil, err
	}
	for _, h := range handlers {
		s := b.samples[h]
		r := res.Handlers[h]
		r.SandboxReadyMs = quantile(s["sandbox_ready"])
		r.SandboxReadyHostMs = quantile(s["sandbox_ready_hostnet"])
		r.PodReadyMs = quantile(s["pod_ready"])
		r.TeardownMs = quantile(s["teardown"])
		r.SandboxReadyAt10Ms = quantile(s["probe_at_10"])
		r.SandboxReadyAtNMs = quantile(s["probe_at_n"])
		r.P99Growth = ratio(r.SandboxReadyAtNMs.P99, r.SandboxReadyAt10Ms.P99)
		r.Parts = sandboxParts(b.timed[h], times)
		res.Handlers[h] = r
	}
	fs := b.samples[floorTurn]
	res.Floor = floorResult{SetupMs: quantile(fs["sandbox_ready"]), TeardownMs: quantile(fs["teardown"]), Cycles: len(fs["sandbox_ready"])}
	res.Samples = map[string]map[string][]float64{}
	for _, h := range handlers {
		res.Samples[h] = b.samples[h]
	}
	res.FloorSamples = fs
	res.Ratio = ratios(res.Handlers)
	res.Targets = evaluate(res.Ratio)
	res.Date = time.Now().UTC().Format("2006-01-02")
	res.Machine = machine()
	res.Versions = versions(b.env)
	return res, nil
}

// logTimes reads containerd's log for the moments of each sandbox start.
func (b *bench) logTimes() (map[string]*podTimes, error) {
	f, err := os.Open(b.env.LogPath())
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseLog(f)
}

// sandboxParts are the quantiles of the log-read parts of the given
// sandboxes' starts.
func sandboxParts(ids []string, times map[string]*podTimes) parts {
	var cni, after, calls []float64
	pods := 0
	for _, id := range ids {
		t := times[id]
		if t == nil {
			continue
		}
		s := t.spans()
		if s.cniOK {
			cni = append(cni, s.cni)
		}
		if s.afterCNIOK {
			after = append(after, s.afterCNI)
		}
		if s.shimCallsOK {
			calls = append(calls, s.shimCalls)
		}
		if s.cniOK || s.afterCNIOK || s.shimCallsOK {
			pods++
		}
	}
	return parts{CNIMs: quantile(cni), AfterCNIMs: quantile(after), ShimCallsMs: quantile(calls), Pods: pods}
}

// probeRounds is how many sandboxes per handler measure the latency at a
// given number of live pods.
const probeRounds = 20

// probe starts and removes probeRounds sandboxes per handler while the live
// pods stay, recording their latency as metric.
func (b *bench) probe(ctx context.Context, order func(int) []string, metric string) error {
	for i := 0; i < probeRounds; i++ {
		for _, h := range order(i) {
			if err := b.startPod(ctx, h, false, false, metric); err != nil {
				return err
			}
			p := b.live[len(b.live)-1]
			b.live = b.live[:len(b.live)-1]
			if err := b.stopPod(ctx, p, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// throughput starts n sandboxes with `clients` concurrent callers.
func (b *bench) throughput(ctx context.Context, handler string, n, clients int) (float64, error) {
	jobs := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		jobs <- struct{}{}
	}
	close(jobs)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Go(func() {
			for range jobs {
				if err := b.startPod(ctx, handler, false, false, "throughput"); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return float64(int(a/b*1000+0.5)) / 1000
}
