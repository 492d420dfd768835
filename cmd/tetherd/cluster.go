package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/tether-gw/tether/server"
	"github.com/tether-gw/tether/server/cluster"
)

// Clustering: one setting, -nats, makes this tetherd a node of a cluster (package
// server/cluster, docs/CLUSTER.md); without it tetherd is a single node and needs no
// external service.

// clusterSettings are the cluster's flags.
type clusterSettings struct {
	nats, natsName, natsUser, natsCreds string
}

func addClusterFlags(fs *flag.FlagSet, s *clusterSettings) {
	fs.StringVar(&s.nats, "nats", "", "NATS server URL(s), comma-separated (nats://host:4222): run as a node of the cluster on that NATS. Default none: a single node.")
	fs.StringVar(&s.natsName, "nats-name", "", "This node's name in NATS and in logs. Default the host name.")
	fs.StringVar(&s.natsUser, "nats-user", "", "User name for NATS; the password is TETHER_NATS_PASSWORD. A token instead: TETHER_NATS_TOKEN.")
	fs.StringVar(&s.natsCreds, "nats-creds", "", "NATS credentials file (JWT and NKey), as nats-server's decentralised auth issues them.")
}

// applyCluster sets o.Broker from the settings; it returns the broker (nil without
// -nats) for metrics.
func applyCluster(st *settings, o *server.Options, log *slog.Logger, getenv func(string) string) (*cluster.Broker, error) {
	c := &st.clusterSettings
	if c.nats == "" {
		return nil, nil
	}
	name := c.natsName
	if name == "" {
		name, _ = os.Hostname()
	}
	b, err := cluster.New(cluster.Options{URL: c.nats, Name: name, User: c.natsUser, Password: getenv("TETHER_NATS_PASSWORD"),
		Token: strings.TrimSpace(getenv("TETHER_NATS_TOKEN")), CredsFile: c.natsCreds, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("-nats: %w", err)
	}
	o.Broker = b
	return b, nil
}

// writeClusterMetrics adds the broker's series to /metrics.
func writeClusterMetrics(b *cluster.Broker) func(io.Writer) {
	return func(w io.Writer) {
		st := b.Stats()
		connected := 0
		if st.Connected {
			connected = 1
		}
		fmt.Fprintf(w, "# HELP tether_cluster_nodes Live nodes this node knows, itself included.\n# TYPE tether_cluster_nodes gauge\ntether_cluster_nodes %d\n", st.Nodes)
		fmt.Fprintf(w, "# HELP tether_cluster_nats_connected 1 while the NATS connection is up.\n# TYPE tether_cluster_nats_connected gauge\ntether_cluster_nats_connected %d\n", connected)
		fmt.Fprintf(w, "# HELP tether_cluster_sent_messages_total Messages this node sent to NATS.\n# TYPE tether_cluster_sent_messages_total counter\ntether_cluster_sent_messages_total %d\n", st.SentMsgs)
		fmt.Fprintf(w, "# HELP tether_cluster_sent_bytes_total Payload bytes this node sent to NATS.\n# TYPE tether_cluster_sent_bytes_total counter\ntether_cluster_sent_bytes_total %d\n", st.SentBytes)
		fmt.Fprintf(w, "# HELP tether_cluster_stored_messages_total QoS1 messages and keep-alive markers this node published to the JetStream stream.\n# TYPE tether_cluster_stored_messages_total counter\ntether_cluster_stored_messages_total %d\n", st.StoredMsgs)
		fmt.Fprintf(w, "# HELP tether_cluster_stored_bytes_total Bytes (subject, headers, payload) of the QoS1 messages this node published to JetStream.\n# TYPE tether_cluster_stored_bytes_total counter\ntether_cluster_stored_bytes_total %d\n", st.StoredBytes)
		fmt.Fprintf(w, "# HELP tether_cluster_jetstream_requests_total Other JetStream requests of this node: reads of QoS1 streams, acknowledgement records.\n# TYPE tether_cluster_jetstream_requests_total counter\ntether_cluster_jetstream_requests_total %d\n", st.JSRequests)
	}
}
