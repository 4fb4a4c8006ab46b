package ingestload

import (
	"context"
	"fmt"
	"strings"
)

// scenarioInstances: the same load against 1, 2, 3 … service instances on
// one database (issue 20: more instances must never be slower than one),
// for HTTP batches and for single events. Each instance is a pool, store
// and listener of its own in this process; they share the machine's cores
// with PostgreSQL and the clients, as instances on one host would.
func (r *runner) scenarioInstances(ctx context.Context) error {
	type load struct {
		name    string
		clients int
		size    int
	}
	loads := []load{
		{fmt.Sprintf("HTTP batches of %d, %d clients", r.o.instBatch, r.o.instBatchClients), r.o.instBatchClients, r.o.instBatch},
		{fmt.Sprintf("single events, %d clients", r.o.singleClients), r.o.singleClients, 1},
	}
	for _, l := range loads {
		var base float64
		var curve []string
		for _, n := range r.o.instances {
			logf("  %s, %d instance(s)", l.name, n)
			rate, note, err := r.instancesRun(ctx, n, l.clients, l.size)
			if err != nil {
				return err
			}
			if base == 0 {
				base = rate
			}
			curve = append(curve, fmt.Sprintf("%d: %.2f×", n, rate/base))
			r.add("i", fmt.Sprintf("%s, %d instance(s)", l.name, n), num(rate)+" events/s",
				fmt.Sprintf("%.2f× the first row of this load; %s", rate/base, note))
		}
		r.fig.instanceCurves = append(r.fig.instanceCurves, l.name+": "+strings.Join(curve, ", "))
	}
	return nil
}

func (r *runner) instancesRun(ctx context.Context, instances, clients, size int) (float64, string, error) {
	svc, err := r.startInstances(ctx, instances, false)
	if err != nil {
		return 0, "", err
	}
	defer svc.close(ctx)
	res, err := r.httpLoad(ctx, svc, nil, clients, size)
	if err != nil {
		return 0, "", err
	}
	check, err := verifyHead(ctx, svc, res.acked)
	if err != nil {
		return 0, "", err
	}
	return res.rate, fmt.Sprintf("p50 %s, p99 %s; %s; %s; %s", ms(res.lat.pct(0.5)), ms(res.lat.pct(0.99)), res.cpu, res.groupNote(), check), nil
}
