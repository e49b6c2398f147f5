// Package localnats runs an in-process NATS server with JetStream enabled.
//
// Tests and `shiftcast dev` use it so that a real broker, with real JetStream
// semantics, is available without installing or launching anything.
package localnats

import (
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// readyTimeout bounds how long Start waits for the listener and JetStream; an
// in-process server is normally ready in milliseconds.
const readyTimeout = 10 * time.Second

// Options configures Start.
type Options struct {
	// Host is the interface to listen on. Empty means 127.0.0.1, so a dev
	// stack is not exposed to the network by accident.
	Host string
	// Port is the client port. Zero picks a random free port.
	Port int
	// StoreDir is the JetStream storage directory. Empty means a temporary
	// directory that Shutdown removes.
	StoreDir string
	// ServerName names the server (and its JetStream node); empty lets the
	// server generate one.
	ServerName string
}

// Server is a running in-process NATS server.
type Server struct {
	ns      *server.Server
	tempDir string
	once    sync.Once
}

// Start starts a NATS server with JetStream and waits until it accepts
// client connections.
func Start(opts Options) (*Server, error) {
	s := &Server{}
	storeDir := opts.StoreDir
	if storeDir == "" {
		dir, err := os.MkdirTemp("", "localnats-")
		if err != nil {
			return nil, fmt.Errorf("localnats: create JetStream store directory: %w", err)
		}
		s.tempDir, storeDir = dir, dir
	}
	host := opts.Host
	if host == "" {
		host = "127.0.0.1"
	}
	port := opts.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}

	ns, err := server.NewServer(&server.Options{
		Host:       host,
		Port:       port,
		ServerName: opts.ServerName,
		JetStream:  true,
		StoreDir:   storeDir,
		// The embedding process owns logging and signal handling; the server
		// must neither print nor react to the test runner's signals.
		NoLog:  true,
		NoSigs: true,
	})
	if err != nil {
		s.removeTemp()
		return nil, fmt.Errorf("localnats: configure server: %w", err)
	}
	s.ns = ns
	ns.Start()
	if !ns.ReadyForConnections(readyTimeout) {
		s.Shutdown()
		return nil, fmt.Errorf("localnats: server on %s:%d not ready within %s", host, opts.Port, readyTimeout)
	}
	if !ns.JetStreamEnabled() {
		s.Shutdown()
		return nil, fmt.Errorf("localnats: JetStream failed to start (store directory %s)", storeDir)
	}
	return s, nil
}

// ClientURL returns the nats:// URL clients connect to.
func (s *Server) ClientURL() string {
	return s.ns.ClientURL()
}

// NATSServer returns the underlying server, for tests that need to inspect
// or manipulate it (e.g. JetStream account usage, disconnecting clients).
func (s *Server) NATSServer() *server.Server {
	return s.ns
}

// Shutdown stops the server, waits until it has fully stopped and removes
// the store directory if Start created it. Calling it again is a no-op.
func (s *Server) Shutdown() {
	s.once.Do(func() {
		if s.ns != nil {
			s.ns.Shutdown()
			s.ns.WaitForShutdown()
		}
		s.removeTemp()
	})
}

func (s *Server) removeTemp() {
	if s.tempDir != "" {
		_ = os.RemoveAll(s.tempDir)
	}
}
