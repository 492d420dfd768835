package e2e

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tether-gw/tether/client"
	"github.com/tether-gw/tether/client/service"
	"github.com/tether-gw/tether/internal/testkit"
)

// clusterScriptPorts are the ports tools/cluster.sh takes above its base.
var clusterScriptPorts = []int{10, 22, 23, 100, 101, 102, 104, 200, 201, 202, 204, 300, 301, 302, 304}

// freeClusterBase returns a port base at which every port tools/cluster.sh uses was free
// a moment ago.
func freeClusterBase(t *testing.T) int {
	t.Helper()
	for range 50 {
		base := 20000 + rand.IntN(400)*100
		ok := true
		var ls []net.Listener
		for _, off := range clusterScriptPorts {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+off))
			if err != nil {
				ok = false
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port base for tools/cluster.sh")
	return 0
}

// TestMakeClusterScript runs tools/cluster.sh (what `make cluster` runs) with a port base
// of its own: once its banner is out, a client connects through the haproxy frontend, a
// service dials node2's control port and pushes to the client by user (which works
// wherever haproxy put it: the nodes are one cluster on NATS). Then SIGINT to the
// script's process group, as a terminal's Ctrl-C sends it, stops the script: it exits 0
// (none of its children died of the signal before it stopped them) and every child it
// listed (nats-server, three tetherd, haproxy) has exited.
func TestMakeClusterScript(t *testing.T) {
	bin := buildTetherd(t)
	base := freeClusterBase(t)
	cmd := exec.Command("../../tools/cluster.sh", bin)
	// The lifetime is a safety net: the test stops it with SIGINT well before.
	cmd.Env = append(cmd.Environ(), "TETHER_CLUSTER_BASE="+strconv.Itoa(base), "TETHER_CLUSTER_LIFETIME=90")
	out := new(testkit.LockedBuffer)
	cmd.Stdout, cmd.Stderr = out, out
	// A process group of its own, as a shell gives a foreground job: Ctrl-C below goes to
	// the whole group, the way a terminal sends it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("tools/cluster.sh output:\n%s", out.String())
		}
	})
	testkit.WaitFor(t, "the cluster's banner", func() bool {
		select {
		case <-exited:
			t.Fatalf("tools/cluster.sh exited early (%v):\n%s", cmd.ProcessState, out.String())
		default:
		}
		return strings.Contains(out.String(), "Stop with Ctrl-C.")
	})
	m := regexp.MustCompile(`pids +nats=(\d+) node1=(\d+) node2=(\d+) node3=(\d+) haproxy=(\d+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no pids line in the banner:\n%s", out.String())
	}
	var pids []int
	for _, s := range m[1:] {
		p, _ := strconv.Atoi(s)
		pids = append(pids, p)
	}
	frontend := fmt.Sprintf("127.0.0.1:%d", base+10)
	if !strings.Contains(out.String(), "frontend     "+frontend) {
		t.Fatalf("banner does not name the frontend %s:\n%s", frontend, out.String())
	}

	got := make(chan string, 4)
	c, err := client.Dial(testkit.Context(t, 10*time.Second), frontend, client.Options{
		Token: "alice", NoReconnect: true, OnPush: func(p client.Push) { got <- string(p.Payload) },
	})
	if err != nil {
		t.Fatalf("client through the frontend: %v", err)
	}
	defer c.Close()
	svc, err := service.Dial(testkit.Context(t, 10*time.Second), fmt.Sprintf("127.0.0.1:%d", base+202), service.Options{
		Name: "script-test", Logger: testkit.Logger(), RequestTimeout: 3 * time.Second,
	})
	if err != nil {
		t.Fatalf("service on node2's control port: %v", err)
	}
	defer svc.Close()
	ctx := testkit.Context(t, 20*time.Second)
	// node2 learns where alice is within the count flush (20 ms) if she is elsewhere.
	testkit.WaitFor(t, "a push through node2 delivered to alice", func() bool {
		res, err := svc.PushUsers(ctx, []string{"alice"}, []byte("hello from node2"), service.PushOptions{})
		return err == nil && res.Delivered == 1
	})
	select {
	case p := <-got:
		if p != "hello from node2" {
			t.Fatalf("alice got %q", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("alice never got the push through node2")
	}
	svc.Close()
	c.Close()

	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("tools/cluster.sh still running 30 s after SIGINT:\n%s", out.String())
	}
	if !cmd.ProcessState.Success() {
		t.Fatalf("tools/cluster.sh exited %v after SIGINT:\n%s", cmd.ProcessState, out.String())
	}
	for i, name := range []string{"nats-server", "node1", "node2", "node3", "haproxy"} {
		if err := syscall.Kill(pids[i], 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s (pid %d) still exists after the script exited: kill 0 = %v", name, pids[i], err)
		}
	}
}
