"""`scale serve`: a web page and JSON API over one retrieval index."""
from __future__ import annotations

from pathlib import Path

import typer

from scale_toolkit.serve.ids import for_terminal
from scale_toolkit.serve.options import ServeOptions, serve_device

from ..app import CONFIG_OPTION, app, console, on_interrupt, out
from ..options import option_from


@app.command("serve")
def serve_cmd(
    index: Path = typer.Option(..., "--index", help="An index written by `scale retrieve --build-index` (with --thumbs for posters)."),
    host: str = option_from(ServeOptions, "host", "--host", help="Address to listen on; 0.0.0.0 lets other machines query (and upload to) this server."),
    port: int = option_from(ServeOptions, "port", "--port", help="Port to listen on (0: any free port; the URL is printed)."),
    max_upload_mb: float = option_from(ServeOptions, "max_upload_mb", "--max-upload-mb", help="Largest video file a query may upload."),
    max_upload_mpix: float = option_from(ServeOptions, "max_upload_mpix", "--max-upload-mpix", help="Largest uploaded video as width x height x frames, in millions; checked from the header before decoding."),
    device: str = option_from(ServeOptions, "device", "--device", help="Device for the SCALE model and for embedding uploaded videos (auto, cpu, cuda, cuda:N)."),
    embed_timeout: float = option_from(ServeOptions, "embed_timeout_s", "--embed-timeout", help="Seconds an uploaded video may take to decode and embed."),
    config: Path = CONFIG_OPTION,
) -> None:
    """Browse and query a video index in a web page (JSON API: /api/index, /api/gallery, /api/search, /api/items, /media, /healthz)."""
    from rich.text import Text

    from scale_toolkit.serve.app import bind_socket, create_app, run_server

    options = ServeOptions(host=host, port=port, max_upload_mb=max_upload_mb, max_upload_mpix=max_upload_mpix,
                           device=device, embed_timeout_s=embed_timeout)
    options.validate()
    device = serve_device(device)
    on_interrupt("the server stopped (nothing to keep); start it again to serve the index")
    shown = for_terminal(str(index))  # a path is printed as text: no markup, no escape sequences
    with console.status(Text(f"opening {shown}")):
        web = create_app(index, max_upload_mb=max_upload_mb, max_upload_mpix=max_upload_mpix, device=device,
                         embed_timeout_s=embed_timeout, host=host)
    sock = bind_socket(host, port)
    info = web.state.service.info()
    out.print(Text(f"serving {shown} ({info['n_videos']} videos, {info['media']} with posters) at "
                   f"{options.url(sock.getsockname()[1])}  (Ctrl-C stops)"), highlight=False, soft_wrap=True)
    if not options.loopback_only():
        console.print(f"note: listening on {host}: anyone who can reach this machine can query it and upload videos")
    run_server(web, sock)
