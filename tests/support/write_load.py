"""Write load for the crash test: creates config maps from several threads and prints each
acknowledged write as `name resourceVersion` (flushed) until the server goes away."""

from __future__ import annotations

import sys
import threading

import httpx


def writer(url: str, token: str, ca: str, worker: int, lock: threading.Lock) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, verify=ca, timeout=10) as session:
        for index in range(100000):
            name = f"load-{worker}-{index}"
            body = {"metadata": {"name": name}, "data": {"index": str(index)}}
            try:
                response = session.post("/api/v1/namespaces/default/configmaps", json=body)
            except httpx.HTTPError:
                return
            if response.status_code != 201:
                return
            with lock:
                print(name, response.json()["metadata"]["resourceVersion"], flush=True)


def main() -> None:
    url, token, ca = sys.argv[1:4]
    lock = threading.Lock()
    threads = [threading.Thread(target=writer, args=(url, token, ca, n, lock)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
