"""`scale serve`: a web page and JSON API over one retrieval index."""
from __future__ import annotations

from pathlib import Path

import typer

from ..app import CONFIG_OPTION, app, console, on_interrupt, out


@app.command("serve")
def serve_cmd(
    index: Path = typer.Option(..., "--index", help="An index written by `scale retrieve --build-index` (with --thumbs for posters)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; 0.0.0.0 lets other machines query (and upload to) this server."),
    port: int = typer.Option(8000, "--port", help="Port to listen on (0: any free port; the URL is printed)."),
    max_upload_mb: float = typer.Option(100.0, "--max-upload-mb", help="Largest video file a query may upload."),
    device: str = typer.Option("cpu", "--device", help="Device for the SCALE model and for embedding uploaded videos."),
    embed_timeout: float = typer.Option(300.0, "--embed-timeout", help="Seconds an uploaded video may take to decode and embed."),
    config: Path = CONFIG_OPTION,
) -> None:
    """Browse and query a video index in a web page (JSON API: /api/index, /api/search, /api/items, /media, /healthz)."""
    from scale_toolkit.errors import ScaleError
    from scale_toolkit.serve.app import bind_socket, create_app, run_server

    if not 0 <= port <= 65535:
        raise ScaleError(f"--port must be in 0..65535, got {port}")
    if embed_timeout <= 0:
        raise ScaleError(f"--embed-timeout must be positive, got {embed_timeout}")
    with console.status(f"opening {index}"):
        web = create_app(index, max_upload_mb=max_upload_mb, device=device, embed_timeout_s=embed_timeout)
    sock = bind_socket(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    info = web.state.service.info()
    out.print(f"serving {index} ({info['n_videos']} videos, {info['media']} with posters) at "
              f"http://{shown}:{bound}/  (Ctrl-C stops)", highlight=False, soft_wrap=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"note: listening on {host}: anyone who can reach this machine can query it and upload videos")
    on_interrupt("the server stopped (nothing to keep); start it again to serve the index")
    run_server(web, sock)
