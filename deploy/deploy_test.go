package deploy_test

// These tests check the deployment files without Docker or Kubernetes: the
// NATS configuration parses with the nats-server parser, its accounts
// enforce the permissions they claim (against an in-process server, with
// shiftcast's own JetStream, micro and publisher code), a 3-node JetStream
// cluster forms from cluster.conf, and the Kubernetes manifests and
// docker-compose.yaml are well formed and consistent with each other.
//
// None of them runs in parallel: the NATS configuration reads its passwords
// and the server name from the environment, so the tests set variables with
// t.Setenv, which the testing package refuses in parallel tests (the
// environment is process-wide).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/shiftcast/shiftcast/consumers"
	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/eligibility"
	"github.com/shiftcast/shiftcast/publishers"
	"github.com/shiftcast/shiftcast/reports"
	"github.com/shiftcast/shiftcast/store"
)

const (
	natsDir      = "nats"
	k8sDir       = "kubernetes"
	composeFile  = "../docker-compose.yaml"
	accountsConf = "accounts.conf"
	clusterConf  = "cluster.conf"
	singleConf   = "single.conf"
)

// passwords are the test's values of the variables accounts.conf reads:
// letters and digits starting with a letter, as accounts.conf asks; "1e5"
// inside checks that such a value stays a string.
var passwords = map[string]string{
	"shiftcast": "pShiftcast1e5",
	"publisher": "pPublisher64k",
	"client":    "pClient42",
	"ops":       "pOps7",
	"sys":       "pSys9",
}

func passwordVar(user string) string { return "NATS_" + strings.ToUpper(user) + "_PASSWORD" }

// setNATSEnv sets every variable the NATS configuration reads.
func setNATSEnv(t *testing.T, podName string) {
	t.Helper()
	for user, pw := range passwords {
		t.Setenv(passwordVar(user), pw)
	}
	t.Setenv("POD_NAME", podName)
}

func TestNATSConfigsParse(t *testing.T) {
	setNATSEnv(t, "nats-0")
	files, err := filepath.Glob(filepath.Join(natsDir, "*.conf"))
	require.NoError(t, err)
	require.ElementsMatch(t, []string{accountsConf, clusterConf, singleConf}, baseNames(files))
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			opts, err := server.ProcessConfigFile(f)
			require.NoError(t, err)
			// Every file defines or includes the accounts.
			assert.Equal(t, "SYS", opts.SystemAccount)
			var names []string
			for _, acc := range opts.Accounts {
				names = append(names, acc.Name)
			}
			assert.ElementsMatch(t, []string{"SHIFTCAST", "SYS"}, names)
			var users []string
			for _, u := range opts.Users {
				users = append(users, u.Username)
				assert.Equal(t, passwords[u.Username], u.Password, "user %s: the password must be read from %s as a string", u.Username, passwordVar(u.Username))
			}
			assert.ElementsMatch(t, []string{"shiftcast", "publisher", "client", "ops", "sys"}, users)
		})
	}

	t.Run("fails closed without a password", func(t *testing.T) {
		t.Setenv(passwordVar("ops"), "")
		require.NoError(t, os.Unsetenv(passwordVar("ops")))
		_, err := server.ProcessConfigFile(filepath.Join(natsDir, singleConf))
		require.Error(t, err)
		assert.Contains(t, err.Error(), passwordVar("ops"))
	})

	// The reason accounts.conf asks for letters and digits, starting with
	// a letter: the parser reads an environment value as a config value.
	for _, pw := range []string{"12345", "64k", "yes", "two words"} {
		t.Run("refuses password "+pw, func(t *testing.T) {
			t.Setenv(passwordVar("ops"), pw)
			_, err := server.ProcessConfigFile(filepath.Join(natsDir, singleConf))
			require.Error(t, err)
		})
	}
}

// startSingle runs the server of single.conf in-process, on random local
// ports, with JetStream in a temporary directory.
func startSingle(t *testing.T) *server.Server {
	t.Helper()
	opts, err := server.ProcessConfigFile(filepath.Join(natsDir, singleConf))
	require.NoError(t, err)
	opts.Host, opts.Port = "127.0.0.1", server.RANDOM_PORT
	opts.HTTPHost, opts.HTTPPort = "127.0.0.1", server.RANDOM_PORT
	opts.StoreDir = t.TempDir()
	opts.NoLog, opts.NoSigs = true, true
	return startServer(t, opts)
}

func startServer(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	s, err := server.NewServer(opts)
	require.NoError(t, err)
	s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	require.True(t, s.ReadyForConnections(10*time.Second), "server not ready")
	return s
}

// violations records a connection's asynchronous errors: a denied publish
// or subscription is reported that way.
type violations struct {
	mu   sync.Mutex
	errs []error
}

func (v *violations) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.errs = append(v.errs, err)
}

func (v *violations) list() []error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.errs)
}

// requireDenied waits for a permissions violation naming subject.
func (v *violations) requireDenied(t *testing.T, subject string) {
	t.Helper()
	want := strings.ToLower(`"` + subject + `"`)
	require.Eventually(t, func() bool {
		for _, err := range v.list() {
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(strings.ToLower(err.Error()), want) {
				return true
			}
		}
		return false
	}, 5*time.Second, 10*time.Millisecond, "no permissions violation for %s; errors: %v", subject, v.list())
}

func (v *violations) requireNone(t *testing.T, who string) {
	t.Helper()
	assert.Empty(t, v.list(), "%s: unexpected asynchronous errors", who)
}

type conn struct {
	nc *nats.Conn
	js jetstream.JetStream
	v  *violations
}

func connect(t *testing.T, clientURL, user string) conn {
	t.Helper()
	v := &violations{}
	nc, err := nats.Connect(clientURL, nats.UserInfo(user, passwords[user]), nats.Name(user), nats.ErrorHandler(v.handler))
	require.NoError(t, err, "connect as %s", user)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return conn{nc: nc, js: js, v: v}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestAccountsEnforcePermissions runs serve's own NATS code as "shiftcast",
// the event publisher as "publisher", a query client as "client" and an
// operator as "ops", against the server of single.conf (which includes
// accounts.conf): what each needs works without a single permissions
// violation, and what it must not do is denied.
func TestAccountsEnforcePermissions(t *testing.T) {
	setNATSEnv(t, "nats-0")
	s := startSingle(t)
	url := s.ClientURL()
	sc := connect(t, url, "shiftcast")
	pub := connect(t, url, "publisher")
	cli := connect(t, url, "client")
	ops := connect(t, url, "ops")

	// serve at start: the streams, the shared durable consumer, the micro
	// service (a nil store: only invalid requests are sent, answered before
	// any query).
	require.NoError(t, consumers.EnsureStreams(ctxTimeout(t, 10*time.Second), sc.js, consumers.StreamsConfig{}))
	applied := make(chan string, 16)
	ec, err := consumers.NewEventConsumer(ctxTimeout(t, 10*time.Second), sc.js, consumers.EventsConfig{
		Apply: func(_ context.Context, evs []store.EventAt) ([]store.Applied, error) {
			res := make([]store.Applied, len(evs))
			for i, e := range evs {
				applied <- e.Event.ID
				res[i] = store.Applied{Effect: store.Effect{Outcome: store.OutcomeApplied}}
			}
			return res, nil
		},
		Logger: zap.NewNop(),
	})
	require.NoError(t, err)
	require.NoError(t, ec.Start())
	t.Cleanup(func() { _ = ec.Stop(context.Background()) })
	resp, err := consumers.StartResponder(sc.nc, consumers.ResponderConfig{
		Service: eligibility.NewService(nil), Reports: reports.NewService(nil), Version: "0.1.0", Logger: zap.NewNop(),
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = resp.Stop(context.Background()) })

	// publisher: an event into the stream, with its PubAck; shiftcast
	// pulls, applies and acknowledges it.
	ep := publishers.NewEventPublisher(pub.js, publishers.EventPublisherOptions{RetryAttempts: -1})
	start := time.Now().UTC().Add(48 * time.Hour).Truncate(time.Hour)
	ev, ack, err := ep.PublishData(ctxTimeout(t, 5*time.Second), "shift.created", map[string]any{
		"id": 1, "facility_id": 1, "profession": "CNA", "start": start, "end": start.Add(5 * time.Hour),
	})
	require.NoError(t, err)
	assert.Equal(t, consumers.StreamMarketplace, ack.Stream)
	select {
	case id := <-applied:
		assert.Equal(t, ev.ID, id)
	case <-time.After(10 * time.Second):
		t.Fatal("shiftcast did not receive the event")
	}

	// A message shiftcast cannot decode is dead-lettered (a PubAck into
	// MARKETPLACE_DLQ) and terminated.
	_, err = pub.js.PublishMsg(ctxTimeout(t, 5*time.Second),
		&nats.Msg{Subject: domain.Subject("shift.created"), Data: []byte("not json")}, jetstream.WithMsgID("bad-1"))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		st, err := sc.js.Stream(ctxTimeout(t, 2*time.Second), consumers.StreamDLQ)
		if err != nil {
			return false
		}
		info, err := st.Info(ctxTimeout(t, 2*time.Second))
		return err == nil && info.State.Msgs == 1
	}, 10*time.Second, 50*time.Millisecond, "the bad message did not reach %s", consumers.StreamDLQ)

	// The admin routes: consumer info (lag), pause and resume.
	cons, err := sc.js.Consumer(ctxTimeout(t, 5*time.Second), consumers.StreamMarketplace, consumers.DurableName)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := cons.Info(ctxTimeout(t, 2*time.Second))
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	}, 10*time.Second, 50*time.Millisecond, "both messages should be acknowledged")
	_, err = sc.js.PauseConsumer(ctxTimeout(t, 5*time.Second), consumers.StreamMarketplace, consumers.DurableName, time.Now().Add(time.Hour))
	require.NoError(t, err)
	_, err = sc.js.ResumeConsumer(ctxTimeout(t, 5*time.Second), consumers.StreamMarketplace, consumers.DurableName)
	require.NoError(t, err)

	// client: a request to the micro service, answered by shiftcast through
	// allow_responses (a 400: the request is invalid on purpose).
	for _, subject := range []string{consumers.SubjectShifts, consumers.SubjectMonthly} {
		reply, err := cli.nc.Request(subject, []byte(`{"worker_id":"x","from":"x"}`), 5*time.Second)
		require.NoError(t, err, subject)
		assert.Equal(t, "400", reply.Header.Get(micro.ErrorCodeHeader), subject)
	}

	// client: a worker's notification, published by shiftcast; another
	// shiftcast instance receives it too, for the worker's in-app feed.
	notes, err := cli.nc.SubscribeSync(domain.NotificationSubjectPrefix + ">")
	require.NoError(t, err)
	require.NoError(t, cli.nc.Flush())
	sc2 := connect(t, url, "shiftcast")
	fed := make(chan domain.Notification, 1)
	stopFeed, err := consumers.NewNotificationFeed(sc2.nc, zap.NewNop()).Subscribe(7, func(n domain.Notification) { fed <- n })
	require.NoError(t, err)
	t.Cleanup(stopFeed)
	require.NoError(t, sc2.nc.Flush())
	require.NoError(t, publishers.NewNATSNotifier(sc.nc).Deliver(ctxTimeout(t, 5*time.Second), domain.Notification{
		ID: "n-1", Type: domain.NotificationTypeShiftsAvailable, WorkerID: 7, Count: 0, CreatedAt: time.Now().UTC(),
	}))
	msg, err := notes.NextMsg(5 * time.Second)
	require.NoError(t, err)
	assert.Equal(t, domain.NotificationSubjectPrefix+"7", msg.Subject)
	select {
	case n := <-fed:
		assert.Equal(t, "n-1", n.ID)
	case <-time.After(5 * time.Second):
		t.Fatal("the in-app feed of another instance did not receive the notification")
	}

	// ops: micro discovery, JetStream state, an ordered consumer reading
	// the stream (as `shiftcast record` does).
	reply, err := ops.nc.Request("$SRV.PING."+consumers.ServiceName, nil, 5*time.Second)
	require.NoError(t, err)
	assert.Contains(t, string(reply.Data), `"name":"`+consumers.ServiceName+`"`)
	_, err = ops.js.AccountInfo(ctxTimeout(t, 5*time.Second))
	require.NoError(t, err)
	opsCons, err := ops.js.Consumer(ctxTimeout(t, 5*time.Second), consumers.StreamMarketplace, consumers.DurableName)
	require.NoError(t, err, "ops reads the shared consumer's info")
	oc, err := ops.js.OrderedConsumer(ctxTimeout(t, 5*time.Second), consumers.StreamMarketplace, jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	first, err := oc.Next(jetstream.FetchMaxWait(5 * time.Second))
	require.NoError(t, err)
	assert.Equal(t, domain.Subject("shift.created"), first.Subject())
	// ... filtered (`shiftcast record --subject`), and on the dead letters.
	oc, err = ops.js.OrderedConsumer(ctxTimeout(t, 5*time.Second), consumers.StreamDLQ,
		jetstream.OrderedConsumerConfig{FilterSubjects: []string{consumers.DLQSubjectPrefix + domain.SubjectPrefix + ">"}})
	require.NoError(t, err)
	dead, err := oc.Next(jetstream.FetchMaxWait(5 * time.Second))
	require.NoError(t, err)
	assert.Equal(t, []byte("not json"), dead.Data())

	// Everything above is what the users need: not one violation.
	sc.v.requireNone(t, "shiftcast")
	sc2.v.requireNone(t, "shiftcast (second instance)")
	pub.v.requireNone(t, "publisher")
	cli.v.requireNone(t, "client")
	ops.v.requireNone(t, "ops")

	countMarketplace := func() uint64 {
		t.Helper()
		st, err := ops.js.Stream(ctxTimeout(t, 5*time.Second), consumers.StreamMarketplace)
		require.NoError(t, err)
		return st.CachedInfo().State.Msgs
	}
	before := countMarketplace()
	short := func() context.Context { return ctxTimeout(t, time.Second) }

	t.Run("publisher cannot publish notifications", func(t *testing.T) {
		require.NoError(t, pub.nc.Publish(domain.NotificationSubjectPrefix+"1", []byte("{}")))
		pub.v.requireDenied(t, domain.NotificationSubjectPrefix+"1")
		_, err := notes.NextMsg(300 * time.Millisecond)
		require.ErrorIs(t, err, nats.ErrTimeout, "the client must not receive it")
	})
	t.Run("publisher cannot delete the stream", func(t *testing.T) {
		require.Error(t, pub.js.DeleteStream(short(), consumers.StreamMarketplace))
		pub.v.requireDenied(t, "$JS.API.STREAM.DELETE."+consumers.StreamMarketplace)
	})
	t.Run("client cannot publish events", func(t *testing.T) {
		_, err := cli.js.Publish(short(), domain.Subject("shift.created"), []byte("{}"))
		require.Error(t, err)
		cli.v.requireDenied(t, domain.Subject("shift.created"))
		assert.Equal(t, before, countMarketplace())
	})
	t.Run("client cannot read the events", func(t *testing.T) {
		_, err := cli.nc.SubscribeSync(domain.SubjectPrefix + ">")
		require.NoError(t, err)
		cli.v.requireDenied(t, domain.SubjectPrefix+">")
	})
	t.Run("client cannot publish notifications", func(t *testing.T) {
		require.NoError(t, cli.nc.Publish(domain.NotificationSubjectPrefix+"2", []byte("{}")))
		cli.v.requireDenied(t, domain.NotificationSubjectPrefix+"2")
	})
	// shiftcast's own denials come last: its connection has shown no
	// violation up to here.
	t.Run("shiftcast cannot delete or purge the stream", func(t *testing.T) {
		require.Error(t, sc.js.DeleteStream(short(), consumers.StreamMarketplace))
		sc.v.requireDenied(t, "$JS.API.STREAM.DELETE."+consumers.StreamMarketplace)
		st, err := sc.js.Stream(ctxTimeout(t, 5*time.Second), consumers.StreamMarketplace)
		require.NoError(t, err)
		require.Error(t, st.Purge(short()))
		sc.v.requireDenied(t, "$JS.API.STREAM.PURGE."+consumers.StreamMarketplace)
		assert.Equal(t, before, countMarketplace())
	})
	t.Run("shiftcast cannot create other consumers", func(t *testing.T) {
		_, err := sc.js.CreateOrUpdateConsumer(short(), consumers.StreamMarketplace, jetstream.ConsumerConfig{Durable: "other"})
		require.Error(t, err)
		sc.v.requireDenied(t, "$JS.API.CONSUMER.CREATE."+consumers.StreamMarketplace+".other")
	})
	t.Run("ops cannot pull from the shared consumer", func(t *testing.T) {
		batch, err := opsCons.Fetch(1, jetstream.FetchMaxWait(time.Second))
		if err == nil {
			for m := range batch.Messages() {
				t.Fatalf("ops received %s from the shared consumer", m.Subject())
			}
		}
		ops.v.requireDenied(t, "$JS.API.CONSUMER.MSG.NEXT."+consumers.StreamMarketplace+"."+consumers.DurableName)
	})
	t.Run("ops cannot change the shared consumer", func(t *testing.T) {
		for _, cfg := range []jetstream.ConsumerConfig{
			{Durable: consumers.DurableName},
			{Durable: consumers.DurableName, FilterSubject: domain.SubjectPrefix + ">"},
		} {
			_, err := ops.js.CreateOrUpdateConsumer(short(), consumers.StreamMarketplace, cfg)
			require.Error(t, err)
		}
		ops.v.requireDenied(t, "$JS.API.CONSUMER.CREATE."+consumers.StreamMarketplace+"."+consumers.DurableName)
		ops.v.requireDenied(t, "$JS.API.CONSUMER.CREATE."+consumers.StreamMarketplace+"."+consumers.DurableName+"."+domain.SubjectPrefix+">")
	})
	t.Run("ops cannot delete the shared consumer", func(t *testing.T) {
		require.Error(t, ops.js.DeleteConsumer(short(), consumers.StreamMarketplace, consumers.DurableName))
		ops.v.requireDenied(t, "$JS.API.CONSUMER.DELETE."+consumers.StreamMarketplace+"."+consumers.DurableName)
		_, err := cons.Info(ctxTimeout(t, 5*time.Second))
		require.NoError(t, err, "the consumer must still exist")
	})
	t.Run("ops cannot publish events", func(t *testing.T) {
		require.NoError(t, ops.nc.Publish(domain.Subject("shift.deleted"), []byte("{}")))
		ops.v.requireDenied(t, domain.Subject("shift.deleted"))
	})
	t.Run("unknown users are refused", func(t *testing.T) {
		_, err := nats.Connect(url, nats.UserInfo("shiftcast", "wrong"))
		require.ErrorIs(t, err, nats.ErrAuthorization)
		_, err = nats.Connect(url)
		require.ErrorIs(t, err, nats.ErrAuthorization)
	})
}

// freePorts returns n distinct free local TCP ports.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// TestClusterFromClusterConf runs three servers from cluster.conf, as the
// StatefulSet does (only the addresses moved to 127.0.0.1), checks that the
// file agrees with the manifests, that shiftcast creates its streams with 3
// replicas and that the probes of the StatefulSet answer 200.
func TestClusterFromClusterConf(t *testing.T) {
	m := loadManifests(t)
	sts := m.workload(t, "StatefulSet", "nats")
	headless := m.service(t, "nats-headless")
	cm := m.get(t, "ConfigMap", "nats-config")
	ctr := sts.Spec.Template.Spec.Containers[0]

	// The ConfigMap carries the files of deploy/nats, unchanged.
	for _, f := range []string{clusterConf, accountsConf} {
		b, err := os.ReadFile(filepath.Join(natsDir, f))
		require.NoError(t, err)
		if got, want := cm.Data[f], string(b); got != want {
			t.Errorf("ConfigMap nats-config in %s: %s differs from deploy/nats/%s (first difference at line %d); copy the file into it",
				cm.File, f, f, firstDifferentLine(got, want))
		}
	}
	// The command reads cluster.conf from the ConfigMap's mount.
	require.Equal(t, "config", volumeOf(t, sts, "nats-config"))
	assert.Equal(t, []string{"nats-server", "--config", mountPath(t, ctr, "config") + "/" + clusterConf}, ctr.Command)

	var nodes []*server.Options
	for i := range sts.Spec.Replicas {
		setNATSEnv(t, fmt.Sprintf("%s-%d", sts.Metadata.Name, i))
		opts, err := server.ProcessConfigFile(filepath.Join(natsDir, clusterConf))
		require.NoError(t, err)
		nodes = append(nodes, opts)
	}
	require.Len(t, nodes, 3)

	// cluster.conf against the StatefulSet and its Services.
	first := nodes[0]
	assert.Equal(t, "nats-0", first.ServerName, "server_name comes from POD_NAME")
	assert.True(t, first.JetStream)
	assert.Equal(t, containerPort(t, ctr, "client"), first.Port)
	assert.Equal(t, containerPort(t, ctr, "monitor"), first.HTTPPort)
	assert.Equal(t, containerPort(t, ctr, "cluster"), first.Cluster.Port)
	assert.Equal(t, servicePort(t, headless, "cluster"), first.Cluster.Port)
	assert.Equal(t, sts.Spec.ServiceName, headless.Metadata.Name)
	var routes, want []string
	for _, r := range first.Routes {
		routes = append(routes, r.Host)
	}
	for i := range sts.Spec.Replicas {
		want = append(want, fmt.Sprintf("%s-%d.%s:%d", sts.Metadata.Name, i, sts.Spec.ServiceName, first.Cluster.Port))
	}
	assert.ElementsMatch(t, want, routes, "cluster.conf routes: every pod of the StatefulSet, through the headless Service")
	assert.True(t, strings.HasPrefix(first.StoreDir, mountPath(t, ctr, "data")+"/"), "store_dir %s is not on the data volume", first.StoreDir)
	assert.Equal(t, mountPath(t, ctr, "pid"), filepath.Dir(first.PidFile))
	require.NotNil(t, ctr.Lifecycle)
	require.NotNil(t, ctr.Lifecycle.PreStop)
	require.NotNil(t, ctr.Lifecycle.PreStop.Exec)
	assert.Equal(t, []string{"nats-server", "--signal", "ldm=" + first.PidFile}, ctr.Lifecycle.PreStop.Exec.Command)
	assert.Greater(t, time.Duration(sts.Spec.Template.Spec.TerminationGracePeriodSeconds)*time.Second,
		first.LameDuckGracePeriod+first.LameDuckDuration, "the pod must outlive lame duck mode")

	// Run the cluster on local ports.
	clusterPorts := freePorts(t, len(nodes))
	var servers []*server.Server
	for i, opts := range nodes {
		opts.Host, opts.Port = "127.0.0.1", server.RANDOM_PORT
		opts.HTTPHost, opts.HTTPPort = "127.0.0.1", server.RANDOM_PORT
		opts.Cluster.Host, opts.Cluster.Port = "127.0.0.1", clusterPorts[i]
		opts.Routes = nil
		for _, p := range clusterPorts {
			opts.Routes = append(opts.Routes, &url.URL{Scheme: "nats", Host: "127.0.0.1:" + strconv.Itoa(p)})
		}
		opts.StoreDir = t.TempDir()
		opts.PidFile = filepath.Join(t.TempDir(), "nats.pid")
		opts.NoLog, opts.NoSigs = true, true
		s, err := server.NewServer(opts)
		require.NoError(t, err)
		s.Start()
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		servers = append(servers, s)
	}
	for _, s := range servers {
		require.True(t, s.ReadyForConnections(10*time.Second))
	}
	require.Eventually(t, func() bool {
		for _, s := range servers {
			if s.JetStreamIsLeader() {
				return true
			}
		}
		return false
	}, 30*time.Second, 50*time.Millisecond, "no JetStream meta leader")

	sc := connect(t, servers[0].ClientURL(), "shiftcast")
	pub := connect(t, servers[2].ClientURL(), "publisher")
	replicas := replicasFlag(t, m.workload(t, "Deployment", "shiftcast"))
	require.Eventually(t, func() bool {
		return consumers.EnsureStreams(ctxTimeout(t, 5*time.Second), sc.js, consumers.StreamsConfig{Replicas: replicas}) == nil
	}, 30*time.Second, 250*time.Millisecond, "shiftcast could not create R%d streams", replicas)
	for _, name := range []string{consumers.StreamMarketplace, consumers.StreamDLQ} {
		st, err := sc.js.Stream(ctxTimeout(t, 5*time.Second), name)
		require.NoError(t, err)
		info := st.CachedInfo()
		assert.Equal(t, replicas, info.Config.Replicas, name)
		require.NotNil(t, info.Cluster, name)
		assert.Equal(t, "shiftcast", info.Cluster.Name)
		assert.Len(t, info.Cluster.Replicas, replicas-1, "%s: peers besides the leader", name)
	}
	_, err := pub.js.Publish(ctxTimeout(t, 5*time.Second), domain.Subject("shift.deleted"), []byte(`{}`))
	require.NoError(t, err, "a PubAck from the replicated stream")

	// The StatefulSet's probes, against every server.
	probes := []*probe{ctr.StartupProbe, ctr.LivenessProbe, ctr.ReadinessProbe}
	for _, s := range servers {
		for _, p := range probes {
			require.NotNil(t, p)
			require.NotNil(t, p.HTTPGet)
			assert.Equal(t, "monitor", p.HTTPGet.Port)
			require.Eventually(t, func() bool {
				return httpStatus(t, "http://"+s.MonitorAddr().String()+p.HTTPGet.Path) == http.StatusOK
			}, 20*time.Second, 100*time.Millisecond, "%s on %s", p.HTTPGet.Path, s.Name())
		}
	}
	sc.v.requireNone(t, "shiftcast")
	pub.v.requireNone(t, "publisher")
}

func replicasFlag(t *testing.T, d *workload) int {
	t.Helper()
	for _, a := range d.Spec.Template.Spec.Containers[0].Args {
		if v, ok := strings.CutPrefix(a, "--stream-replicas="); ok {
			n, err := strconv.Atoi(v)
			require.NoError(t, err)
			return n
		}
	}
	t.Fatal("the shiftcast Deployment does not set --stream-replicas")
	return 0
}

func httpStatus(t *testing.T, u string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// Kubernetes manifests: the fields the checks read.

type objectMeta struct {
	Name      string            `yaml:"name"`
	Namespace string            `yaml:"namespace"`
	Labels    map[string]string `yaml:"labels"`
}

type manifest struct {
	File       string
	APIVersion string            `yaml:"apiVersion"`
	Kind       string            `yaml:"kind"`
	Metadata   objectMeta        `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Resources  []string          `yaml:"resources"`
	raw        yaml.Node
}

type nameRef struct {
	Name string `yaml:"name"`
}

type keyRef struct {
	Name     string `yaml:"name"`
	Key      string `yaml:"key"`
	Optional bool   `yaml:"optional"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Ports   []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef    *keyRef `yaml:"secretKeyRef"`
			ConfigMapKeyRef *keyRef `yaml:"configMapKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	EnvFrom []struct {
		ConfigMapRef *nameRef `yaml:"configMapRef"`
		SecretRef    *nameRef `yaml:"secretRef"`
	} `yaml:"envFrom"`
	StartupProbe   *probe `yaml:"startupProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	Lifecycle      *struct {
		PreStop *struct {
			Exec *struct {
				Command []string `yaml:"command"`
			} `yaml:"exec"`
			Sleep *struct {
				Seconds int `yaml:"seconds"`
			} `yaml:"sleep"`
		} `yaml:"preStop"`
	} `yaml:"lifecycle"`
	SecurityContext struct {
		ReadOnlyRootFilesystem bool `yaml:"readOnlyRootFilesystem"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type workload struct {
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		Replicas    int    `yaml:"replicas"`
		ServiceName string `yaml:"serviceName"`
		Selector    struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata objectMeta `yaml:"metadata"`
			Spec     struct {
				TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
				SecurityContext               struct {
					RunAsNonRoot bool `yaml:"runAsNonRoot"`
				} `yaml:"securityContext"`
				Containers []container `yaml:"containers"`
				Volumes    []struct {
					Name      string   `yaml:"name"`
					ConfigMap *nameRef `yaml:"configMap"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type selectorSpec struct {
	Spec struct {
		// Service
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Name string `yaml:"name"`
			Port int    `yaml:"port"`
		} `yaml:"ports"`
		// HorizontalPodAutoscaler
		ScaleTargetRef struct {
			Kind string `yaml:"kind"`
			Name string `yaml:"name"`
		} `yaml:"scaleTargetRef"`
		// NetworkPolicy
		PodSelector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"podSelector"`
	} `yaml:"spec"`
}

type manifests []*manifest

func loadManifests(t *testing.T) manifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	var all manifests
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		for i := 0; ; i++ {
			var node yaml.Node
			err := dec.Decode(&node)
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err, "%s: document %d", f, i)
			if node.Kind == 0 || (len(node.Content) == 1 && node.Content[0].Tag == "!!null") {
				continue
			}
			m := &manifest{File: filepath.Base(f), raw: node}
			require.NoError(t, node.Decode(m), "%s: document %d", f, i)
			all = append(all, m)
		}
	}
	return all
}

func (ms manifests) find(kind, name string) *manifest {
	for _, m := range ms {
		if m.Kind == kind && m.Metadata.Name == name {
			return m
		}
	}
	return nil
}

func (ms manifests) get(t *testing.T, kind, name string) *manifest {
	t.Helper()
	m := ms.find(kind, name)
	require.NotNil(t, m, "no %s %q in %s", kind, name, k8sDir)
	return m
}

func (ms manifests) workload(t *testing.T, kind, name string) *workload {
	t.Helper()
	var w workload
	require.NoError(t, ms.get(t, kind, name).raw.Decode(&w))
	require.NotEmpty(t, w.Spec.Template.Spec.Containers, "%s %s has no container", kind, name)
	return &w
}

func (ms manifests) service(t *testing.T, name string) *struct {
	Metadata     objectMeta `yaml:"metadata"`
	selectorSpec `yaml:",inline"`
} {
	t.Helper()
	var s struct {
		Metadata     objectMeta `yaml:"metadata"`
		selectorSpec `yaml:",inline"`
	}
	require.NoError(t, ms.get(t, "Service", name).raw.Decode(&s))
	return &s
}

func containerPort(t *testing.T, c container, name string) int {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("container %s has no port %q", c.Name, name)
	return 0
}

func servicePort(t *testing.T, s interface{ ports() map[string]int }, name string) int {
	t.Helper()
	p, ok := s.ports()[name]
	require.True(t, ok, "service has no port %q", name)
	return p
}

func (s selectorSpec) ports() map[string]int {
	m := map[string]int{}
	for _, p := range s.Spec.Ports {
		m[p.Name] = p.Port
	}
	return m
}

func mountPath(t *testing.T, c container, volume string) string {
	t.Helper()
	for _, v := range c.VolumeMounts {
		if v.Name == volume {
			return v.MountPath
		}
	}
	t.Fatalf("container %s does not mount %q", c.Name, volume)
	return ""
}

// volumeOf returns the name of the pod volume backed by ConfigMap cm.
func volumeOf(t *testing.T, w *workload, cm string) string {
	t.Helper()
	for _, v := range w.Spec.Template.Spec.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == cm {
			return v.Name
		}
	}
	t.Fatalf("%s mounts no ConfigMap %q", w.Metadata.Name, cm)
	return ""
}

func subset(sub, of map[string]string) bool {
	if len(sub) == 0 {
		return false
	}
	for k, v := range sub {
		if of[k] != v {
			return false
		}
	}
	return true
}

// appliedSeparately are the manifests kustomization.yaml leaves out on
// purpose (deploy/README.md says how to apply them).
var appliedSeparately = []string{"secrets.example.yaml", "migrate-job.yaml"}

func TestKubernetesManifests(t *testing.T) {
	m := loadManifests(t)

	for _, doc := range m {
		assert.NotEmpty(t, doc.APIVersion, "%s: a document without apiVersion", doc.File)
		assert.NotEmpty(t, doc.Kind, "%s: a document without kind", doc.File)
		if doc.Kind != "Kustomization" {
			assert.NotEmpty(t, doc.Metadata.Name, "%s: a %s without metadata.name", doc.File, doc.Kind)
		}
	}

	t.Run("kustomization", func(t *testing.T) {
		var k *manifest
		for _, doc := range m {
			if doc.Kind == "Kustomization" {
				k = doc
			}
		}
		require.NotNil(t, k)
		files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
		require.NoError(t, err)
		for _, f := range baseNames(files) {
			switch {
			case f == "kustomization.yaml":
			case slices.Contains(appliedSeparately, f):
				assert.NotContains(t, k.Resources, f)
			default:
				assert.Contains(t, k.Resources, f, "%s is neither in kustomization.yaml nor applied separately", f)
			}
		}
		for _, r := range k.Resources {
			assert.FileExists(t, filepath.Join(k8sDir, r))
		}
	})

	t.Run("selectors", func(t *testing.T) {
		var pods []map[string]string // every workload's pod labels
		for _, doc := range m {
			switch doc.Kind {
			case "Deployment", "StatefulSet", "Job":
				var w workload
				require.NoError(t, doc.raw.Decode(&w))
				if doc.Kind != "Job" {
					assert.True(t, subset(w.Spec.Selector.MatchLabels, w.Spec.Template.Metadata.Labels),
						"%s %s: the selector does not match the pod template's labels", doc.Kind, doc.Metadata.Name)
				}
				pods = append(pods, w.Spec.Template.Metadata.Labels)
			}
		}
		matches := func(sel map[string]string) bool {
			return slices.ContainsFunc(pods, func(p map[string]string) bool { return subset(sel, p) })
		}
		for _, doc := range m {
			var s selectorSpec
			switch doc.Kind {
			case "Service", "NetworkPolicy", "HorizontalPodAutoscaler":
				require.NoError(t, doc.raw.Decode(&s), "%s %s", doc.Kind, doc.Metadata.Name)
			}
			switch doc.Kind {
			case "Service":
				assert.True(t, matches(s.Spec.Selector), "Service %s selects no pod", doc.Metadata.Name)
			case "PodDisruptionBudget":
				var pdb struct {
					Spec struct {
						Selector struct {
							MatchLabels map[string]string `yaml:"matchLabels"`
						} `yaml:"selector"`
					} `yaml:"spec"`
				}
				require.NoError(t, doc.raw.Decode(&pdb))
				assert.True(t, matches(pdb.Spec.Selector.MatchLabels), "PodDisruptionBudget %s selects no pod", doc.Metadata.Name)
			case "NetworkPolicy":
				assert.True(t, matches(s.Spec.PodSelector.MatchLabels), "NetworkPolicy %s selects no pod", doc.Metadata.Name)
			case "HorizontalPodAutoscaler":
				assert.NotNil(t, m.find(s.Spec.ScaleTargetRef.Kind, s.Spec.ScaleTargetRef.Name),
					"HorizontalPodAutoscaler %s scales a missing %s", doc.Metadata.Name, s.Spec.ScaleTargetRef.Kind)
			}
		}
	})

	t.Run("config and secret references", func(t *testing.T) {
		for _, doc := range m {
			if doc.Kind != "Deployment" && doc.Kind != "StatefulSet" && doc.Kind != "Job" {
				continue
			}
			var w workload
			require.NoError(t, doc.raw.Decode(&w))
			for _, c := range w.Spec.Template.Spec.Containers {
				where := doc.Kind + " " + doc.Metadata.Name + ", container " + c.Name
				for _, e := range c.EnvFrom {
					if e.ConfigMapRef != nil {
						assert.NotNil(t, m.find("ConfigMap", e.ConfigMapRef.Name), "%s: no ConfigMap %s", where, e.ConfigMapRef.Name)
					}
					if e.SecretRef != nil {
						assert.NotNil(t, m.find("Secret", e.SecretRef.Name), "%s: no Secret %s in secrets.example.yaml", where, e.SecretRef.Name)
					}
				}
				for _, e := range c.Env {
					if e.ValueFrom == nil {
						continue
					}
					if r := e.ValueFrom.SecretKeyRef; r != nil {
						s := m.find("Secret", r.Name)
						require.NotNil(t, s, "%s: no Secret %s in secrets.example.yaml", where, r.Name)
						assert.Contains(t, s.StringData, r.Key, "%s: Secret %s has no key %s", where, r.Name, r.Key)
					}
					if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
						cm := m.find("ConfigMap", r.Name)
						require.NotNil(t, cm, "%s: no ConfigMap %s", where, r.Name)
						assert.Contains(t, cm.Data, r.Key)
					}
				}
			}
		}
	})

	t.Run("secrets are placeholders", func(t *testing.T) {
		for _, doc := range m {
			if doc.Kind != "Secret" {
				continue
			}
			assert.Equal(t, "secrets.example.yaml", doc.File, "Secret %s outside the example file", doc.Metadata.Name)
			for k, v := range doc.StringData {
				assert.True(t, v == "" || strings.Contains(v, "REPLACEME"), "Secret %s: %s is not a placeholder", doc.Metadata.Name, k)
			}
		}
		nats := m.get(t, "Secret", "nats-users")
		for user := range passwords {
			assert.Contains(t, nats.StringData, passwordVar(user))
		}
	})

	t.Run("shiftcast serve", func(t *testing.T) {
		d := m.workload(t, "Deployment", "shiftcast")
		c := d.Spec.Template.Spec.Containers[0]
		assert.Equal(t, "serve", c.Args[0])
		assert.GreaterOrEqual(t, d.Spec.Replicas, 2, "several replicas")
		assert.Equal(t, 3, replicasFlag(t, d), "streams replicated on the 3 NATS servers")
		assert.True(t, d.Spec.Template.Spec.SecurityContext.RunAsNonRoot)
		assert.True(t, c.SecurityContext.ReadOnlyRootFilesystem)
		require.NotNil(t, c.ReadinessProbe)
		require.NotNil(t, c.LivenessProbe)
		require.NotNil(t, c.StartupProbe)
		assert.Equal(t, "/readyz?check=postgres&check=migrations", c.ReadinessProbe.HTTPGet.Path, "queries stay served while NATS is down")
		assert.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
		assert.Equal(t, "/healthz", c.StartupProbe.HTTPGet.Path)
		// serve's --shutdown-timeout defaults to 15s; the preStop sleep comes first.
		grace := d.Spec.Template.Spec.TerminationGracePeriodSeconds
		sleep := 0
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
			sleep = c.Lifecycle.PreStop.Sleep.Seconds
		}
		assert.Greater(t, grace, 15+sleep, "terminationGracePeriodSeconds must exceed the preStop sleep plus serve's shutdown timeout")
		// NATS_URL names the shiftcast user and the client Service.
		var natsURL string
		for _, e := range c.Env {
			if e.Name == "NATS_URL" {
				natsURL = e.Value
			}
		}
		u, err := url.Parse(natsURL)
		require.NoError(t, err)
		assert.Equal(t, "shiftcast", u.User.Username())
		assert.Equal(t, "nats", u.Hostname())
		svc := m.service(t, "nats")
		assert.Equal(t, strconv.Itoa(servicePort(t, svc, "client")), u.Port())
		assert.Equal(t, 8080, containerPort(t, c, "http"))
		shiftcastSvc := m.service(t, "shiftcast")
		assert.Equal(t, 8080, servicePort(t, shiftcastSvc, "http"))
	})
}

// compose is the part of docker-compose.yaml the checks read.
type compose struct {
	Services map[string]struct {
		Image   string   `yaml:"image"`
		Command []string `yaml:"command"`
		Build   *struct {
			Context string `yaml:"context"`
		} `yaml:"build"`
		DependsOn   map[string]struct{ Condition string } `yaml:"depends_on"`
		Environment map[string]string                     `yaml:"environment"`
		Volumes     []string                              `yaml:"volumes"`
		Healthcheck *struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
		Profiles []string `yaml:"profiles"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

var composeVar = regexp.MustCompile(`\$\{([A-Z_]+):-([^}]*)\}`)

// interpolate replaces ${VAR:-default} by its default, as docker compose
// does with VAR unset.
func interpolate(s string) string { return composeVar.ReplaceAllString(s, "$2") }

func TestDockerCompose(t *testing.T) {
	b, err := os.ReadFile(composeFile)
	require.NoError(t, err)
	var c compose
	require.NoError(t, yaml.Unmarshal(b, &c))
	for _, name := range []string{"postgres", "nats", "shiftcast", "seed"} {
		require.Contains(t, c.Services, name)
	}
	for name, svc := range c.Services {
		for dep, d := range svc.DependsOn {
			require.Contains(t, c.Services, dep, "%s depends on a missing service", name)
			if d.Condition == "service_healthy" {
				assert.NotNil(t, c.Services[dep].Healthcheck, "%s waits for %s to be healthy, which has no healthcheck", name, dep)
			}
		}
		for _, v := range svc.Volumes {
			src, _, ok := strings.Cut(v, ":")
			require.True(t, ok, "%s: volume %q", name, v)
			if strings.HasPrefix(src, ".") {
				assert.DirExists(t, filepath.Join("..", src), "%s: bind mount %s", name, src)
			} else {
				assert.Contains(t, c.Volumes, src, "%s: undeclared volume %s", name, src)
			}
		}
		if svc.Build != nil {
			assert.FileExists(t, filepath.Join("..", svc.Build.Context, "Dockerfile"))
		}
	}
	assert.Equal(t, []string{"demo"}, c.Services["seed"].Profiles)

	// The NATS server of compose: its configuration through the bind mount,
	// its passwords' defaults, shiftcast's NATS_URL against it, and its
	// health check's URL.
	ns := c.Services["nats"]
	cfgPath := ns.Command[slices.Index(ns.Command, "--config")+1]
	var hostCfg string
	for _, v := range ns.Volumes {
		parts := strings.Split(v, ":")
		if rel, ok := strings.CutPrefix(cfgPath, parts[1]+"/"); ok {
			hostCfg = filepath.Join("..", parts[0], rel)
		}
	}
	want, err := filepath.Abs(filepath.Join(natsDir, singleConf))
	require.NoError(t, err)
	got, err := filepath.Abs(hostCfg)
	require.NoError(t, err)
	require.Equal(t, want, got, "the nats service's --config, through its bind mount")
	for k, v := range ns.Environment {
		t.Setenv(k, interpolate(v))
	}
	opts, err := server.ProcessConfigFile(hostCfg)
	require.NoError(t, err)
	opts.Host, opts.Port = "127.0.0.1", server.RANDOM_PORT
	opts.HTTPHost, opts.HTTPPort = "127.0.0.1", server.RANDOM_PORT
	opts.StoreDir = t.TempDir()
	opts.NoLog, opts.NoSigs = true, true
	s := startServer(t, opts)

	u, err := url.Parse(interpolate(c.Services["shiftcast"].Environment["NATS_URL"]))
	require.NoError(t, err)
	assert.Equal(t, "nats", u.Hostname(), "shiftcast reaches NATS by its service name")
	u.Host = strings.TrimPrefix(s.ClientURL(), "nats://")
	nc, err := nats.Connect(u.String())
	require.NoError(t, err, "shiftcast's NATS_URL of docker-compose.yaml")
	nc.Close()

	test := ns.Healthcheck.Test
	hc, err := url.Parse(test[len(test)-1])
	require.NoError(t, err)
	hc.Host = s.MonitorAddr().String()
	require.Eventually(t, func() bool { return httpStatus(t, hc.String()) == http.StatusOK }, 10*time.Second, 50*time.Millisecond,
		"the nats healthcheck %s", hc)
}

func firstDifferentLine(a, b string) int {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return i + 1
		}
	}
	return min(len(al), len(bl)) + 1
}

func baseNames(files []string) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = filepath.Base(f)
	}
	return out
}
