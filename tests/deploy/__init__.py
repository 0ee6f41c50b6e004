"""Tests of the container image, the docker-compose stack and the Helm chart, without Docker or a cluster."""
