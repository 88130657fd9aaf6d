package publisher

import (
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// StartEmbedded starts an in-process nats-server with JetStream, storing in storeDir
// and listening on host:port (port -1: any free port). Stop it with Shutdown and
// WaitForShutdown.
func StartEmbedded(host string, port int, storeDir string) (*server.Server, error) {
	ns, err := server.NewServer(&server.Options{
		ServerName: "rollcall-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   storeDir,
		NoSigs:     true, // the worker handles signals itself
	})
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded nats-server: not ready after 10s")
	}
	return ns, nil
}
