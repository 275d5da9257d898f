// Package cpustat reads CPU time used so far, by this process and by a
// Redis server, for benchmarks: unlike wall time it hardly moves with the
// load of other processes on the machine.
package cpustat

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// Self returns the user and system CPU time this process has used.
func Self() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("cpustat: getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// Redis returns the user and system CPU time the server has used (INFO cpu);
// on a Redis Cluster the sum over its masters.
func Redis(ctx context.Context, rdb redis.UniversalClient) (time.Duration, error) {
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		var total time.Duration
		err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			d, err := Redis(ctx, c)
			mu.Lock()
			total += d
			mu.Unlock()
			return err
		})
		return total, err
	}
	info, err := rdb.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, fmt.Errorf("cpustat: info cpu: %w", err)
	}
	var total float64
	found := 0
	for line := range strings.Lines(info) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, fmt.Errorf("cpustat: %s: %w", k, err)
			}
			total += f
			found++
		}
	}
	if found != 2 {
		return 0, fmt.Errorf("cpustat: used_cpu_sys or used_cpu_user missing from INFO")
	}
	return time.Duration(total * float64(time.Second)), nil
}
