"""A network, a volume, a built image, a healthy server with an upload, and a job that exits non-zero."""

import pulumi
import pulumi_docker as docker
import pulumi_random as random

config = pulumi.Config("mlspec")
suffix = config.require("suffix")  # unique names per test session

network = docker.Network("net", name=f"engine-check-{suffix}")
volume = docker.Volume("data", name=f"engine-check-data-{suffix}")
image = docker.Image(
    "app",
    image_name=f"engine-check-app:{suffix}",
    build=docker.DockerBuildArgs(context="app", dockerfile="app/Dockerfile",
                                 args={"BASE_IMAGE": config.require("baseImage")}),
    skip_push=True,
)
web = docker.Container(
    "web",
    name=f"engine-check-web-{suffix}",
    image=image.repo_digest,
    command=["python3", "-m", "http.server", "8000", "--directory", "/srv"],
    envs=["GREETING=hello"],
    user="10001",
    ports=[docker.ContainerPortArgs(internal=8000, ip="127.0.0.1")],
    volumes=[docker.ContainerVolumeArgs(volume_name=volume.name, container_path="/data")],
    networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=network.name, aliases=["web"])],
    healthcheck=docker.ContainerHealthcheckArgs(
        tests=["CMD", "python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/')"],
        interval="1s", timeout="2s", retries=30, start_period="1s"),
    uploads=[docker.ContainerUploadArgs(file="/srv/hello.txt", content="uploaded before start\n")],
    labels=[docker.ContainerLabelArgs(label="role", value="web")],
    memory=256,
    restart="unless-stopped",
    wait=True,
    wait_timeout=60,
)
job = docker.Container(
    "job",
    name=f"engine-check-job-{suffix}",
    image=image.repo_digest,
    command=["sh", "-c", "python3 -c \"import urllib.request; print(urllib.request.urlopen('http://web:8000/hello.txt')"
             ".read().decode().strip())\" && echo written > /data/out.txt && exit 3"],
    user="10001",
    volumes=[docker.ContainerVolumeArgs(volume_name=volume.name, container_path="/data")],
    networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=network.name)],
    must_run=False,
    attach=True,
    logs=True,
    opts=pulumi.ResourceOptions(depends_on=[web]),
)
key = random.RandomPassword("key", length=24, special=False)

pulumi.export("webPort", web.ports.apply(lambda ports: (ports or [])[0].external))
pulumi.export("jobExitCode", job.exit_code)
pulumi.export("jobLogs", job.container_logs)
pulumi.export("key", key.result)
