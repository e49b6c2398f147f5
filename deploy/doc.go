// Package deploy holds no code: it is the home of the deployment files
// (Kubernetes manifests in kubernetes/, NATS server configuration in nats/,
// the scaling-out guide in README.md) and of deploy_test.go, which checks
// them without Docker or Kubernetes: the NATS configuration parses, its
// accounts enforce the permissions they claim, a 3-node cluster forms from
// it, and every manifest and docker-compose.yaml is well formed.
package deploy
