"""Locust users for the benchmark: the same GET / loop as ours, no wait, HttpUser or FastHttpUser by env."""

import os

from locust import HttpUser, constant, task
from locust.contrib.fasthttp import FastHttpUser


class BenchHttpUser(HttpUser):
    wait_time = constant(0)
    abstract = os.environ.get("AMFX_BENCH_LOCUST_CLASS") != "HttpUser"

    @task
    def get_root(self):
        self.client.get("/")


class BenchFastHttpUser(FastHttpUser):
    wait_time = constant(0)
    abstract = os.environ.get("AMFX_BENCH_LOCUST_CLASS") != "FastHttpUser"

    @task
    def get_root(self):
        self.client.get("/")
