package testenv

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATSCluster is a JetStream cluster of in-process nats-server nodes joined
// by routes on loopback, each with a store directory of its own. A test
// stops nodes at will (Kill); the rest are shut down when the test ends.
type NATSCluster struct {
	t     testing.TB
	mu    sync.Mutex
	nodes []*server.Server // nil once killed
}

// StartNATSCluster starts size nodes and waits until the cluster has a
// meta leader that knows every node, so that replicated streams can be
// created at once.
func StartNATSCluster(t testing.TB, size int) *NATSCluster {
	t.Helper()
	c := LaunchNATSCluster(t, size)
	c.WaitMetaLeader()
	return c
}

// LaunchNATSCluster starts size nodes and returns as soon as each accepts
// client connections: the JetStream cluster may not have formed yet (as
// when every process of a deployment starts at once).
func LaunchNATSCluster(t testing.TB, size int) *NATSCluster {
	t.Helper()
	routePorts := make([]int, size)
	routes := make([]string, size)
	for i := range size {
		routePorts[i] = freePort(t)
		routes[i] = fmt.Sprintf("nats://127.0.0.1:%d", routePorts[i])
	}
	storeDirs := make([]string, size)
	for i := range size {
		storeDirs[i] = t.TempDir()
	}
	c := &NATSCluster{t: t}
	t.Cleanup(c.shutdownAll) // after the store dirs: cleanups run last first
	for i := range size {
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       server.RANDOM_PORT,
			JetStream:  true,
			StoreDir:   storeDirs[i],
			NoSigs:     true,
			NoLog:      true,
			Cluster:    server.ClusterOpts{Name: "segments-test", Host: "127.0.0.1", Port: routePorts[i]},
			Routes:     server.RoutesFromStr(strings.Join(routes, ",")),
		}
		srv, err := server.NewServer(opts)
		if err != nil {
			t.Fatalf("NATS cluster node %d: %v", i+1, err)
		}
		go srv.Start()
		c.nodes = append(c.nodes, srv)
	}
	for i, srv := range c.nodes {
		if !srv.ReadyForConnections(15 * time.Second) {
			t.Fatalf("NATS cluster node %d is not ready for connections", i+1)
		}
	}
	return c
}

// WaitMetaLeader waits until a running node is the JetStream meta leader
// and knows every node of the cluster.
func (c *NATSCluster) WaitMetaLeader() {
	c.t.Helper()
	Eventually(c.t, 30*time.Second, "a JetStream meta leader that knows every node", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, srv := range c.nodes {
			if srv != nil && srv.JetStreamIsLeader() && len(srv.JetStreamClusterPeers()) == len(c.nodes) {
				return true
			}
		}
		return false
	})
}

// ClientURL is node i's client URL ("" once killed).
func (c *NATSCluster) ClientURL(i int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nodes[i] == nil {
		return ""
	}
	return c.nodes[i].ClientURL()
}

// Size is the number of nodes, killed ones included.
func (c *NATSCluster) Size() int { return len(c.nodes) }

// URLs is the client URL list of the running nodes, for nats.Connect.
func (c *NATSCluster) URLs() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var urls []string
	for _, srv := range c.nodes {
		if srv != nil {
			urls = append(urls, srv.ClientURL())
		}
	}
	return strings.Join(urls, ",")
}

// Connect returns a client connection to the running nodes (closed at
// cleanup) and its JetStream context; it creates no stream.
func (c *NATSCluster) Connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(c.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("connect to the NATS cluster: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// StreamLeader is the index of the node that leads the stream (-1: none
// known yet).
func (c *NATSCluster) StreamLeader(stream string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, srv := range c.nodes {
		if srv != nil && srv.JetStreamIsStreamLeader(globalAccount, stream) {
			return i
		}
	}
	return -1
}

// globalAccount is the account of clients of a server without accounts.
const globalAccount = "$G"

// Kill shuts node i down (as a stopped process: its clients are
// disconnected, the leaderships it held move to the others).
func (c *NATSCluster) Kill(i int) {
	c.mu.Lock()
	srv := c.nodes[i]
	c.nodes[i] = nil
	c.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Shutdown()
	srv.WaitForShutdown()
}

// WaitStreamLeader waits until some running node leads the stream and
// returns its index.
func (c *NATSCluster) WaitStreamLeader(stream string) int {
	c.t.Helper()
	leader := -1
	Eventually(c.t, 30*time.Second, "a leader of stream "+stream, func() bool {
		leader = c.StreamLeader(stream)
		return leader >= 0
	})
	return leader
}

func (c *NATSCluster) shutdownAll() {
	for i := range c.nodes {
		c.Kill(i)
	}
}
