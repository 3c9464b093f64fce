package sim

import (
	"context"
	"runtime"
	"sync"
)

// RunMany runs n simulations on workers goroutines (0: GOMAXPROCS): job
// says the scenario and options of run i (0 ≤ i < n). Each run's result
// is handed to each on the calling goroutine as the run finishes, in no
// set order, so each needs no lock. When ctx is done no more runs start;
// RunMany returns once the runs under way are over (a run takes
// milliseconds). Every run is still deterministic: its result depends on
// its scenario and options only.
func RunMany(ctx context.Context, n, workers int, job func(i int) (*Scenario, Options), each func(i int, r *Result, err error)) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	type done struct {
		i   int
		r   *Result
		err error
	}
	next, results := make(chan int), make(chan done)
	var wg sync.WaitGroup
	for range min(workers, max(n, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				sc, opts := job(i)
				r, err := Run(sc, opts)
				results <- done{i, r, err}
			}
		}()
	}
	go func() {
	hand:
		for i := range n {
			if ctx.Err() != nil {
				break
			}
			select {
			case next <- i:
			case <-ctx.Done():
				break hand
			}
		}
		close(next)
		wg.Wait()
		close(results)
	}()
	for d := range results {
		each(d.i, d.r, d.err)
	}
}
